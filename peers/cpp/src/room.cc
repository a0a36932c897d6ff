#include "room.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>

namespace room {

const std::map<int, int>& EpisodeSteps() {
  static const std::map<int, int> steps = {{3, 20}, {6, 50}, {21, 100}, {27, 150}, {33, 250}};
  return steps;
}

int ParseTask(const std::string& task) {
  static const std::regex pattern(R"(^(?:[Rr]oom-(\d+)|peerlearn/Room-(\d+)-v0)$)");
  std::smatch m;
  if (!std::regex_match(task, m, pattern)) return 0;
  int size = std::stoi(m[1].matched ? m[1].str() : m[2].str());
  return EpisodeSteps().count(size) ? size : 0;
}

std::string EnvId(int size) { return "peerlearn/Room-" + std::to_string(size) + "-v0"; }

// numpy's rint / round: nearest integer, halves to even (the default floating-point rounding mode).
static double Rint(double x) { return std::nearbyint(x); }

int OptimalAction(const double obs[4], int size, bool mirror) {
  const double l1 = size - 1;
  const double agent[2] = {Rint(obs[0] * l1), Rint(obs[1] * l1)};
  double diff[2];
  for (int i = 0; i < 2; ++i) {
    const double target = mirror ? 1.0 - Rint(obs[2 + i]) : obs[2 + i];
    diff[i] = Rint(target * l1) - agent[i];
  }
  if (diff[0] == 0 && diff[1] == 0) {
    const double gap0 = std::min(agent[0], l1 - agent[0]);
    const double gap1 = std::min(agent[1], l1 - agent[1]);
    const int axis = gap1 < gap0 ? 1 : 0;
    return axis * 2 + (agent[axis] <= l1 - agent[axis] ? 1 : 0);
  }
  const int axis = std::fabs(diff[1]) > std::fabs(diff[0]) ? 1 : 0;
  return axis * 2 + (diff[axis] > 0 ? 0 : 1);
}

namespace {

constexpr double kStepReward = -0.001;
constexpr double kGoalReward = 1.0;

double ValueAtDistance(int distance, bool on_border, double gamma) {
  const double at_target = on_border ? kGoalReward / (1.0 - gamma)
                                     : (kStepReward + gamma * kGoalReward) / (1.0 - gamma * gamma);
  if (distance == 0) return at_target;
  const double walking = kStepReward * (1.0 - std::pow(gamma, distance - 1)) / (1.0 - gamma);
  return walking + std::pow(gamma, distance - 1) * (kGoalReward + gamma * at_target);
}

}  // namespace

double QValue(const double obs[4], int action, int size, bool mirror, double gamma) {
  static const int kMoves[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
  const double l1 = size - 1;
  int moved[2], target[2];
  for (int i = 0; i < 2; ++i) {
    const double goal = mirror ? 1.0 - Rint(obs[2 + i]) : obs[2 + i];
    target[i] = int(std::clamp(Rint(goal * l1), 0.0, l1));
    const int agent = int(std::clamp(Rint(obs[i] * l1), 0.0, l1));
    moved[i] = std::clamp(agent + kMoves[action][i], 0, size - 1);
  }
  const int distance = std::abs(moved[0] - target[0]) + std::abs(moved[1] - target[1]);
  const bool on_border = target[0] == 0 || target[0] == size - 1 || target[1] == 0 || target[1] == size - 1;
  const double reward = distance == 0 ? kGoalReward : kStepReward;
  return reward + gamma * ValueAtDistance(distance, on_border, gamma);
}

double VValue(const double obs[4], int size, bool mirror, double gamma) {
  double best = QValue(obs, 0, size, mirror, gamma);
  for (int a = 1; a < 4; ++a) best = std::max(best, QValue(obs, a, size, mirror, gamma));
  return best;
}

}  // namespace room
