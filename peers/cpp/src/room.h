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

// The exact critic of that scripted policy (same closed form as peer_service/envs/room_critic.py):
// the discounted return of taking `action` and then walking straight to the target and staying there
// (-0.001 per step off the target, +1 per step on it; off the border it steps off and back).
double QValue(const double obs[4], int action, int size, bool mirror, double gamma);

// V(s) = max_a Q(s, a): the scripted policy is optimal for its target.
double VValue(const double obs[4], int size, bool mirror, double gamma);

}  // namespace room
