// peerlearn-cpp-peer: an adviser-only peerlearn.v1 peer for the Room grid world (scripted expert or
// adversary). It answers GetInfo, Suggest and Evaluate (the exact critic of its scripted policy);
// every other call is UNIMPLEMENTED (docs/protocol.md).
// It also serves grpc.health.v1 (gRPC's built-in health service) and server reflection.
//
//   peers/cpp/build/peerlearn-cpp-peer --port P [--host 127.0.0.1] [--task room-21] [--peer-id ID]
//       [--role expert|adversary] [--seed S] [--total-steps N] [--port-file F] [--exit-with-parent]

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "peerlearn/v1/peer.grpc.pb.h"
#include "room.h"

namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
namespace pb = peerlearn::v1;

constexpr const char* kProtocolVersion = "peerlearn.v1";
constexpr const char* kService = "peerlearn.v1.PeerService";
constexpr int64_t kMaxElements = int64_t{1} << 22;
constexpr int64_t kMaxBatch = 4096;
constexpr int kMaxMessageBytes = 16 * 1024 * 1024;
// Discount of the scripted adviser's exact critic (the paper's DQN gamma on Room).
constexpr double kGamma = 0.99;

struct Options {
  std::string host = "127.0.0.1";
  int port = -1;
  std::string task = "room-21";
  std::string peer_id = "peer-0";
  std::string role = "adversary";
  std::string port_file;
  bool exit_with_parent = false;
};

// Little-endian reads, independent of the host's byte order.
uint64_t ReadLE(const std::string& data, size_t offset, size_t size) {
  uint64_t v = 0;
  for (size_t i = 0; i < size; ++i) v |= uint64_t(uint8_t(data[offset + i])) << (8 * i);
  return v;
}

void AppendLE(std::string* out, uint64_t v, size_t size) {
  for (size_t i = 0; i < size; ++i) out->push_back(char((v >> (8 * i)) & 0xff));
}

// Checks a tensor's header against its bytes: known dtype, no negative dimension, at most
// kMaxElements elements, prod(shape) * itemsize bytes. Fills the item size and element count.
Status CheckTensor(const pb::Tensor& t, const std::string& name, size_t* itemsize, int64_t* count,
                   std::string* shape_text) {
  switch (t.dtype()) {
    case pb::DTYPE_FLOAT32: case pb::DTYPE_INT32: *itemsize = 4; break;
    case pb::DTYPE_FLOAT64: case pb::DTYPE_INT64: *itemsize = 8; break;
    default:
      return Status(StatusCode::INVALID_ARGUMENT, name + ": unsupported dtype " + std::to_string(t.dtype()) +
                                                      "; expected one of FLOAT32, FLOAT64, INT32, INT64");
  }
  std::ostringstream shape;
  *count = 1;
  for (int i = 0; i < t.shape_size(); ++i) {
    const int64_t d = t.shape(i);
    shape << (i ? ", " : "") << d;
    if (d < 0) return Status(StatusCode::INVALID_ARGUMENT, name + ": negative dimension in shape (" + shape.str() + ")");
    if (d > kMaxElements || (*count *= d) > kMaxElements) {
      return Status(StatusCode::INVALID_ARGUMENT, name + ": more than " + std::to_string(kMaxElements) + " elements");
    }
  }
  *shape_text = shape.str();
  if (t.data().size() != size_t(*count) * *itemsize) {
    return Status(StatusCode::INVALID_ARGUMENT, name + ": shape (" + *shape_text + ") needs " +
                                                    std::to_string(*count * int64_t(*itemsize)) + " bytes, got " +
                                                    std::to_string(t.data().size()));
  }
  return Status::OK;
}

// Decodes a batch of observations (B, 4), FLOAT32 or FLOAT64, finite; fills `rows` (B * 4 doubles).
Status DecodeStates(const pb::Tensor& t, const std::string& name, std::vector<double>* rows) {
  size_t itemsize;
  int64_t count;
  std::string shape;
  Status s = CheckTensor(t, name, &itemsize, &count, &shape);
  if (!s.ok()) return s;
  if (t.dtype() != pb::DTYPE_FLOAT32 && t.dtype() != pb::DTYPE_FLOAT64) {
    return Status(StatusCode::INVALID_ARGUMENT, name + ": expected FLOAT32 or FLOAT64 observations, got an integer dtype");
  }
  if (t.shape_size() != 2 || t.shape(1) != 4) {
    return Status(StatusCode::INVALID_ARGUMENT, name + ": expected shape (B, 4), got (" + shape + ")");
  }
  if (t.shape(0) > kMaxBatch) {
    return Status(StatusCode::INVALID_ARGUMENT, name + ": batch exceeds the limit of " + std::to_string(kMaxBatch));
  }
  rows->resize(size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    double v;
    if (itemsize == 4) {
      const uint32_t bits = uint32_t(ReadLE(t.data(), size_t(i) * 4, 4));
      float f;
      std::memcpy(&f, &bits, 4);
      v = f;
    } else {
      const uint64_t bits = ReadLE(t.data(), size_t(i) * 8, 8);
      std::memcpy(&v, &bits, 8);
      // As the Python peer: a finite FLOAT64 beyond float32's range is refused like Inf.
      if (std::isfinite(v) && std::fabs(v) > double(std::numeric_limits<float>::max())) v = INFINITY;
    }
    if (!std::isfinite(v)) return Status(StatusCode::INVALID_ARGUMENT, name + ": contains NaN or Inf");
    (*rows)[size_t(i)] = v;
  }
  return Status::OK;
}

// Decodes a batch of Discrete(4) actions: INT32 or INT64, shape (batch,), each in 0..3.
Status DecodeActions(const pb::Tensor& t, const std::string& name, size_t batch, std::vector<int>* actions) {
  size_t itemsize;
  int64_t count;
  std::string shape;
  Status s = CheckTensor(t, name, &itemsize, &count, &shape);
  if (!s.ok()) return s;
  if (t.dtype() != pb::DTYPE_INT32 && t.dtype() != pb::DTYPE_INT64) {
    return Status(StatusCode::INVALID_ARGUMENT, name + ": a Discrete(4) action must be INT32 or INT64");
  }
  if (t.shape_size() != 1 || t.shape(0) != int64_t(batch)) {
    return Status(StatusCode::INVALID_ARGUMENT,
                  name + ": expected shape (" + std::to_string(batch) + ",), got (" + shape + ")");
  }
  actions->resize(batch);
  for (size_t i = 0; i < batch; ++i) {
    const uint64_t bits = ReadLE(t.data(), i * itemsize, itemsize);
    const int64_t a = itemsize == 4 ? int64_t(int32_t(uint32_t(bits))) : int64_t(bits);
    if (a < 0 || a > 3) {
      return Status(StatusCode::INVALID_ARGUMENT, name + ": action out of range [0, 3]: " + std::to_string(a));
    }
    (*actions)[i] = int(a);
  }
  return Status::OK;
}

pb::Tensor Float64Tensor(const std::vector<double>& values) {
  pb::Tensor t;
  t.set_dtype(pb::DTYPE_FLOAT64);
  t.add_shape(int64_t(values.size()));
  std::string data;
  for (double v : values) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    AppendLE(&data, bits, 8);
  }
  t.set_data(data);
  return t;
}

// Critic values go out as FLOAT32 (docs/protocol.md).
pb::Tensor Float32Tensor(const std::vector<double>& values) {
  pb::Tensor t;
  t.set_dtype(pb::DTYPE_FLOAT32);
  t.add_shape(int64_t(values.size()));
  std::string data;
  for (double v : values) {
    const float f = float(v);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    AppendLE(&data, bits, 4);
  }
  t.set_data(data);
  return t;
}

class AdviserService final : public pb::PeerService::Service {
 public:
  AdviserService(const Options& o, int size) : opts_(o), size_(size) {}

  Status GetInfo(ServerContext*, const pb::GetInfoRequest*, pb::PeerInfo* info) override {
    info->set_protocol_version(kProtocolVersion);
    info->set_peer_id(opts_.peer_id);
    info->set_language("c++17/grpc-" + grpc::Version());
    info->set_implementation("scripted-" + opts_.role);
    info->set_env_id(room::EnvId(size_));
    auto* box = info->mutable_observation_space()->mutable_box();
    box->add_shape(4);
    *box->mutable_low() = Float64Tensor({0, 0, 0, 0});
    *box->mutable_high() = Float64Tensor({1, 1, 1, 1});
    box->set_dtype(pb::DTYPE_FLOAT32);
    auto* discrete = info->mutable_action_space()->mutable_discrete();
    discrete->set_n(4);
    discrete->set_start(0);
    auto* caps = info->mutable_capabilities();
    caps->set_advises(true);
    caps->set_evaluates(true);  // with the exact critic of its scripted policy (room.h)
    caps->set_acts(false);
    caps->set_learns(false);
    info->set_gamma(kGamma);
    info->set_warmup_steps(0);
    info->set_last_step_id(0);
    info->set_episode_active(false);
    return Status::OK;
  }

  Status Suggest(ServerContext*, const pb::SuggestRequest* request, pb::SuggestReply* reply) override {
    std::vector<double> rows;
    Status s = DecodeStates(request->states(), "states", &rows);
    if (!s.ok()) return s;
    const bool mirror = opts_.role == "adversary";
    const size_t batch = rows.size() / 4;
    pb::Tensor* actions = reply->mutable_actions();
    actions->set_dtype(pb::DTYPE_INT64);
    actions->add_shape(int64_t(batch));
    std::string data;
    data.reserve(batch * 8);
    for (size_t b = 0; b < batch; ++b) AppendLE(&data, uint64_t(room::OptimalAction(&rows[4 * b], size_, mirror)), 8);
    actions->set_data(data);
    return Status::OK;
  }

  // Unset q_states / q_actions / v_states mean empty batches, as in the Python peer.
  Status Evaluate(ServerContext*, const pb::EvaluateRequest* request, pb::EvaluateReply* reply) override {
    std::vector<double> q_rows, v_rows;
    std::vector<int> actions;
    Status s;
    if (request->has_q_states() && !(s = DecodeStates(request->q_states(), "q_states", &q_rows)).ok()) return s;
    const size_t q_batch = q_rows.size() / 4;
    if (request->has_q_actions()) {
      if (!(s = DecodeActions(request->q_actions(), "q_actions", q_batch, &actions)).ok()) return s;
    } else if (q_batch > 0) {
      return Status(StatusCode::INVALID_ARGUMENT,
                    "q_actions: expected shape (" + std::to_string(q_batch) + ",), got an unset tensor");
    }
    if (request->has_v_states() && !(s = DecodeStates(request->v_states(), "v_states", &v_rows)).ok()) return s;
    const bool mirror = opts_.role == "adversary";
    std::vector<double> q(q_batch), v(v_rows.size() / 4);
    for (size_t b = 0; b < q.size(); ++b) q[b] = room::QValue(&q_rows[4 * b], actions[b], size_, mirror, kGamma);
    for (size_t m = 0; m < v.size(); ++m) v[m] = room::VValue(&v_rows[4 * m], size_, mirror, kGamma);
    *reply->mutable_q_values() = Float32Tensor(q);
    *reply->mutable_v_values() = Float32Tensor(v);
    return Status::OK;
  }
  Status Reset(ServerContext*, const pb::ResetRequest*, pb::ResetReply*) override { return Refuse("Reset"); }
  Status Step(ServerContext*, const pb::StepRequest*, pb::StepReply*) override { return Refuse("Step"); }
  Status RunEvaluation(ServerContext*, const pb::RunEvaluationRequest*, pb::RunEvaluationReply*) override {
    return Refuse("RunEvaluation");
  }
  Status Save(ServerContext*, const pb::SaveRequest*, pb::SaveReply*) override { return Refuse("Save"); }
  Status Load(ServerContext*, const pb::LoadRequest*, pb::LoadReply*) override { return Refuse("Load"); }

 private:
  Status Refuse(const std::string& call) const {
    return Status(StatusCode::UNIMPLEMENTED, call + ": peer " + opts_.peer_id + " is an adviser (" + opts_.role +
                                                 "); it only answers GetInfo, Suggest and Evaluate");
  }

  Options opts_;
  int size_;
};

void Usage(const char* argv0) {
  std::cerr << "usage: " << argv0
            << " --port P [--host 127.0.0.1] [--task room-21] [--peer-id peer-0] [--role expert|adversary]\n"
               "       [--seed S] [--total-steps N] [--port-file F] [--exit-with-parent]\n";
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const auto eq = arg.find('=');
    const bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--help" || arg == "-h") return false;
    if (arg == "--exit-with-parent") {
      o->exit_with_parent = true;
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        std::cerr << arg << " needs a value\n";
        return false;
      }
      value = argv[++i];
    }
    if (arg == "--port") {
      o->port = std::atoi(value.c_str());
    } else if (arg == "--host") {
      o->host = value;
    } else if (arg == "--task") {
      o->task = value;
    } else if (arg == "--peer-id") {
      o->peer_id = value;
    } else if (arg == "--role") {
      o->role = value;
    } else if (arg == "--port-file") {
      o->port_file = value;
    } else if (arg == "--seed" || arg == "--total-steps") {
      // Accepted for launcher compatibility; a scripted adviser has no randomness and no budget.
    } else {
      std::cerr << "unknown option " << arg << "\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (!ParseArgs(argc, argv, &opts) || opts.port < 0) {
    Usage(argv[0]);
    return 2;
  }
  if (opts.role != "expert" && opts.role != "adversary") {
    std::cerr << "the C++ peer is adviser-only: --role must be expert or adversary, got '" << opts.role << "'\n";
    return 2;
  }
  const int size = room::ParseTask(opts.task);
  if (size == 0) {
    std::cerr << "unknown task '" << opts.task << "': the C++ peer knows room-3, room-6, room-21, room-27, room-33\n";
    return 2;
  }

  // SIGTERM / SIGINT are taken synchronously by the main thread (blocked before gRPC starts its threads).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  AdviserService service(opts, size);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(opts.host + ":" + std::to_string(opts.port), grpc::InsecureServerCredentials(), &bound);
  // Accept the orchestrator's keepalive pings (every 10 s) even on a connection without calls, such
  // as its spare connection for hedged calls; gRPC's default answers them with GOAWAY "too_many_pings".
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::cerr << "could not bind " << opts.host << ":" << opts.port << "\n";
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("", true);
  server->GetHealthCheckService()->SetServingStatus(kService, true);
  std::cerr << "cpp peer " << opts.peer_id << " (scripted-" << opts.role << ") serving " << room::EnvId(size) << " on "
            << opts.host << ":" << bound << std::endl;
  if (!opts.port_file.empty()) {
    const std::string tmp = opts.port_file + ".tmp";
    std::ofstream(tmp) << bound;
    std::rename(tmp.c_str(), opts.port_file.c_str());  // atomic: a reader never sees half a port
  }

  const pid_t parent = getppid();
  const timespec tick = {0, 500 * 1000 * 1000};
  std::string why;
  for (;;) {
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      why = sig == SIGTERM ? "SIGTERM" : "SIGINT";
      break;
    }
    if (opts.exit_with_parent && getppid() != parent) {
      why = "parent is gone";
      break;
    }
  }
  std::cerr << "cpp peer " << opts.peer_id << ": " << why << ", stopping" << std::endl;
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return 0;
}
