// The scripted Room advisers (same rule as peer_service/envs/room.py optimal_action).
#pragma once

#include <map>
#include <string>

namespace room {

// Episode length per Room size; the sizes the protocol's Room tasks use.
const std::map<int, int>& EpisodeSteps();

// "room-21" or "peerlearn/Room-21-v0" -> 21; 0 when the task is not a Room.
int ParseTask(const std::string& task);

std::string EnvId(int size);

// The expert's move from an observation [agent/(L-1), goal/(L-1)]: close the larger gap to the target
// first (the x axis on a tie). The adversary (mirror) walks to the mirrored goal 1 - round(goal).
// On the target it pushes into the nearest wall (a move that stays put).
int OptimalAction(const double obs[4], int size, bool mirror);

}  // namespace room
