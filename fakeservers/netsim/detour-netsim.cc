// detour-netsim: a real-time ns-3 network between Linux network namespaces.
//
// The only C++ of the project. Each endpoint (the client, each fake server)
// lives in its own network namespace with a persistent tap device, created
// beforehand by netsim.c. This program enters each namespace, opens the tap
// itself (no helper binary, no TapBridge: see NETSIM-NOTES.md) and hands the
// file descriptor to an FdNetDevice on an edge router. Every edge router
// joins one core router over a point-to-point link whose delay, jitter, loss
// and rate are set per endpoint; that link is "the link to server a".
//
//   tap(ns c) - edge c ==link c== core ==link a== edge a - tap(ns a)
//                                       ==link b== edge b - tap(ns b) ...
//
// Semantics (README.md): `delay` is the round-trip time a link adds (half
// each way), so RTT(client, a) ~= delay(c) + delay(a) + 1-2 ms of ns-3.
// `jitter` J adds uniform [-J/2, +J/2] per packet and direction, without
// reordering; `loss` is a per-packet, per-direction drop probability;
// `down` drops everything (a silent black hole: connects time out).
//
// Usage:
//   detour-netsim [--run-id ID] --link NAME,ns=NETNS,tap=TAP,addr=A.B.C.D/P
//                 [,delay=20ms][,jitter=2ms][,loss=0.01][,rate=10Mbps] ...
//                 [--event 2s:a:down] [--event 5s:a:delay=200ms] ...
// stdout: "ready" once the simulation runs, then one "ok ..." or
// "error ..." line per command read on stdin:
//   link NAME down|up | link NAME delay|jitter|loss|rate VALUE | status | quit
// Exit: `quit`, stdin EOF (the owner died) or SIGTERM/SIGINT/SIGHUP.
// Event times count from `ready`. Diagnostics go to stderr.

#include "ns3/core-module.h"
#include "ns3/fd-net-device-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace ns3;

namespace {

constexpr size_t kMaxLinks = 64; // core-side subnets are 10.201.(128+k).0/24

// A point-to-point channel that owns the link's impairments, so that delay,
// jitter, loss and down/up change in one place, live. The base class keeps
// one fixed delay and has no jitter at all.
class ImpairedChannel : public PointToPointChannel {
public:
  ImpairedChannel() { m_rng = CreateObject<UniformRandomVariable>(); }

  bool TransmitStart(Ptr<const Packet> p, Ptr<PointToPointNetDevice> src,
                     Time txTime) override {
    const size_t dir = GetPointToPointDevice(0) == src ? 0 : 1;
    Ptr<PointToPointNetDevice> dst = GetPointToPointDevice(1 - dir);
    if (down || (loss > 0 && m_rng->GetValue(0, 1) < loss)) {
      drops[dir]++;
      return true; // the wire was busy all the same
    }
    Time arrive = Simulator::Now() + txTime + OneWay();
    // A single path never reorders: a packet cannot overtake the last.
    if (arrive < m_last[dir]) {
      arrive = m_last[dir];
    }
    m_last[dir] = arrive;
    passed[dir]++;
    Simulator::ScheduleWithContext(
        dst->GetNode()->GetId(), arrive - Simulator::Now(),
        &PointToPointNetDevice::Receive, dst, p->Copy());
    return true;
  }

  Time delay;  // round trip added by this link; half each way
  Time jitter; // peak to peak, per direction
  double loss = 0;
  bool down = false;
  uint64_t drops[2] = {0, 0};
  uint64_t passed[2] = {0, 0};

private:
  Time OneWay() {
    double ns = delay.GetNanoSeconds() / 2.0;
    if (jitter.IsStrictlyPositive()) {
      ns += (m_rng->GetValue(0, 1) - 0.5) * jitter.GetNanoSeconds();
    }
    return NanoSeconds(ns < 0 ? 0 : static_cast<int64_t>(ns));
  }

  Ptr<UniformRandomVariable> m_rng;
  Time m_last[2];
};

struct Link {
  std::string name, netns, tap;
  Ipv4Address routerAddr;
  Ipv4Mask mask;
  Time delay, jitter;
  double loss = 0;
  uint64_t rateBps = 1000000000ULL; // fast enough not to shape by default
  Ptr<ImpairedChannel> chan;
  Ptr<PointToPointNetDevice> devs[2];
};

struct Event {
  Time at;
  std::string link, key, value;
};

std::vector<Link> g_links;

// ---------------------------------------------------------------- parsing

bool ParseTime(const std::string &s, Time *out) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno != 0 || v < 0 || !std::isfinite(v)) {
    return false;
  }
  std::string unit(end);
  double ns;
  if (unit == "ns")
    ns = v;
  else if (unit == "us")
    ns = v * 1e3;
  else if (unit == "ms" || (unit.empty() && v == 0))
    ns = v * 1e6;
  else if (unit == "s")
    ns = v * 1e9;
  else
    return false;
  if (ns > 1e15) // eleven days: a typo, not a link
  {
    return false;
  }
  *out = NanoSeconds(static_cast<int64_t>(ns));
  return true;
}

bool ParseRate(const std::string &s, uint64_t *out) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno != 0 || v <= 0 || !std::isfinite(v)) {
    return false;
  }
  std::string unit(end);
  double mult = 1;
  if (!unit.empty() && std::strchr("kKmMgG", unit[0])) {
    mult = std::tolower(unit[0]) == 'k'   ? 1e3
           : std::tolower(unit[0]) == 'm' ? 1e6
                                          : 1e9;
    unit.erase(0, 1);
  }
  if (unit != "bps" && unit != "bit") {
    return false;
  }
  if (v * mult < 1000 || v * mult > 1e11) {
    return false;
  }
  *out = static_cast<uint64_t>(v * mult);
  return true;
}

bool ParseLoss(const std::string &s, double *out) {
  char *end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !(v >= 0 && v <= 1)) {
    return false;
  }
  *out = v;
  return true;
}

Link *FindLink(const std::string &name) {
  for (auto &l : g_links) {
    if (l.name == name) {
      return &l;
    }
  }
  return nullptr;
}

// One impairment change, shared by the command line, timed events and the
// control channel. Returns an error message, empty on success. Before the
// channel exists (command line) it only records the value.
std::string ApplyAction(Link &l, const std::string &key,
                        const std::string &value) {
  if (key == "down" || key == "up") {
    if (!value.empty() || !l.chan)
      return key + " takes no value and needs a running link";
    l.chan->down = key == "down";
    return "";
  }
  if (key == "delay" || key == "jitter") {
    Time t;
    if (!ParseTime(value, &t))
      return "bad duration '" + value + "' (use e.g. 20ms, 1.5s)";
    (key == "delay" ? l.delay : l.jitter) = t;
    if (l.chan)
      (key == "delay" ? l.chan->delay : l.chan->jitter) = t;
    return "";
  }
  if (key == "loss") {
    if (!ParseLoss(value, &l.loss))
      return "bad loss '" + value + "' (a probability from 0 to 1)";
    if (l.chan)
      l.chan->loss = l.loss;
    return "";
  }
  if (key == "rate") {
    if (!ParseRate(value, &l.rateBps))
      return "bad rate '" + value + "' (use e.g. 10Mbps, 512kbps)";
    for (auto &d : l.devs)
      if (d)
        d->SetDataRate(DataRate(l.rateBps));
    return "";
  }
  return "unknown setting '" + key + "'";
}

std::vector<std::string> Split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    out.push_back(item);
  }
  return out;
}

// NAME,ns=NETNS,tap=TAP,addr=A.B.C.D/P[,delay=..][,jitter=..][,loss=..][,rate=..]
std::string ParseLinkArg(const std::string &arg) {
  auto parts = Split(arg, ',');
  if (parts.empty() || parts[0].empty() || parts[0].size() > 15)
    return "--link needs a name first";
  Link l;
  l.name = parts[0];
  for (size_t i = 1; i < parts.size(); i++) {
    size_t eq = parts[i].find('=');
    if (eq == std::string::npos)
      return "--link " + l.name + ": '" + parts[i] + "' is not key=value";
    std::string k = parts[i].substr(0, eq), v = parts[i].substr(eq + 1);
    if (k == "ns")
      l.netns = v;
    else if (k == "tap")
      l.tap = v;
    else if (k == "addr") {
      auto ap = Split(v, '/');
      int prefix = ap.size() == 2 ? std::atoi(ap[1].c_str()) : -1;
      if (prefix < 8 || prefix > 30 ||
          Ipv4Address(ap[0].c_str()) == Ipv4Address())
        return "--link " + l.name + ": bad addr '" + v + "'";
      l.routerAddr = Ipv4Address(ap[0].c_str());
      l.mask = Ipv4Mask(("/" + ap[1]).c_str());
    } else {
      std::string err = ApplyAction(l, k, v);
      if (!err.empty())
        return "--link " + l.name + ": " + err;
    }
  }
  if (l.netns.empty() || l.tap.empty() || l.tap.size() >= IFNAMSIZ ||
      l.mask == Ipv4Mask())
    return "--link " + l.name +
           ": ns=, tap= (< 16 chars) and addr= are required";
  if (FindLink(l.name))
    return "--link " + l.name + " given twice";
  if (g_links.size() == kMaxLinks)
    return "too many links";
  g_links.push_back(l);
  return "";
}

// T:NAME:ACTION with ACTION down, up or key=value.
std::string ParseEventArg(const std::string &arg, std::vector<Event> *events) {
  auto parts = Split(arg, ':');
  Event e;
  if (parts.size() != 3 || !ParseTime(parts[0], &e.at))
    return "--event '" + arg + "': use TIME:LINK:ACTION, e.g. 2s:a:down";
  e.link = parts[1];
  size_t eq = parts[2].find('=');
  e.key = parts[2].substr(0, eq);
  e.value = eq == std::string::npos ? "" : parts[2].substr(eq + 1);
  events->push_back(e);
  return "";
}

// ---------------------------------------------------------------- topology

// Enter the namespace, open the tap there (a tun file belongs to the
// namespace it was opened in), come back. Returns the fd or -1.
int OpenTapIn(const std::string &netns, const std::string &tap,
              std::string *err) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  int fd = -1;
  if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
    *err = "cannot enter namespace " + netns + ": " + std::strerror(errno);
  } else {
    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) != 0) {
      *err = "cannot attach tap " + tap + " in " + netns + ": " +
             std::strerror(errno);
      if (fd >= 0)
        close(fd);
      fd = -1;
    }
    if (setns(self, CLONE_NEWNET) != 0) {
      // Staying in a foreign namespace would open the next tap wrongly.
      std::perror("detour-netsim: setns back");
      std::_Exit(3);
    }
  }
  if (self >= 0)
    close(self);
  if (target >= 0)
    close(target);
  return fd;
}

void AssignAddress(Ptr<NetDevice> dev, Ipv4Address addr, Ipv4Mask mask) {
  Ptr<Ipv4> ip = dev->GetNode()->GetObject<Ipv4>();
  int32_t ifIndex = ip->AddInterface(dev);
  ip->AddAddress(ifIndex, Ipv4InterfaceAddress(addr, mask));
  ip->SetUp(ifIndex);
}

uint32_t IfIndex(Ptr<NetDevice> dev) {
  return dev->GetNode()->GetObject<Ipv4>()->GetInterfaceForDevice(dev);
}

Ptr<PointToPointNetDevice> NewP2pDevice(Ptr<Node> node, const Link &l) {
  Ptr<PointToPointNetDevice> d = CreateObject<PointToPointNetDevice>();
  d->SetAddress(Mac48Address::Allocate());
  d->SetDataRate(DataRate(l.rateBps));
  d->SetQueue(CreateObject<DropTailQueue<Packet>>());
  node->AddDevice(d);
  return d;
}

// Edge router k: the tap on one side, link k to the core on the other.
// Link k's subnet is 10.201.(128+k).0/24: core .1, edge .2.
std::string BuildEdge(Ptr<Node> core, size_t k) {
  Link &l = g_links[k];
  std::string err;
  int fd = OpenTapIn(l.netns, l.tap, &err);
  if (fd < 0)
    return err;

  Ptr<Node> edge = CreateObject<Node>();
  InternetStackHelper stack;
  stack.SetRoutingHelper(Ipv4StaticRoutingHelper());
  stack.SetIpv6StackInstall(false);
  stack.Install(edge);

  Ptr<FdNetDevice> tapDev = CreateObject<FdNetDevice>();
  tapDev->SetAddress(Mac48Address::Allocate());
  tapDev->SetFileDescriptor(fd);
  edge->AddDevice(tapDev);
  AssignAddress(tapDev, l.routerAddr, l.mask);

  l.chan = CreateObject<ImpairedChannel>();
  l.chan->delay = l.delay;
  l.chan->jitter = l.jitter;
  l.chan->loss = l.loss;
  l.devs[0] = NewP2pDevice(edge, l);
  l.devs[1] = NewP2pDevice(core, l);
  l.devs[0]->Attach(l.chan);
  l.devs[1]->Attach(l.chan);

  char coreAddr[32], edgeAddr[32];
  std::snprintf(coreAddr, sizeof coreAddr, "10.201.%zu.1", 128 + k);
  std::snprintf(edgeAddr, sizeof edgeAddr, "10.201.%zu.2", 128 + k);
  AssignAddress(l.devs[0], Ipv4Address(edgeAddr), Ipv4Mask("/24"));
  AssignAddress(l.devs[1], Ipv4Address(coreAddr), Ipv4Mask("/24"));

  Ipv4StaticRoutingHelper rh;
  rh.GetStaticRouting(edge->GetObject<Ipv4>())
      ->SetDefaultRoute(Ipv4Address(coreAddr), IfIndex(l.devs[0]));
  rh.GetStaticRouting(core->GetObject<Ipv4>())
      ->AddNetworkRouteTo(l.routerAddr.CombineMask(l.mask), l.mask,
                          Ipv4Address(edgeAddr), IfIndex(l.devs[1]));
  return "";
}

std::string BuildTopology() {
  Ptr<Node> core = CreateObject<Node>();
  InternetStackHelper stack;
  stack.SetRoutingHelper(Ipv4StaticRoutingHelper());
  stack.SetIpv6StackInstall(false);
  stack.Install(core);
  for (size_t k = 0; k < g_links.size(); k++) {
    std::string err = BuildEdge(core, k);
    if (!err.empty())
      return err;
  }
  return "";
}

// ------------------------------------------------------ events and control

// stdout is the reply channel; only the simulation thread writes to it, so
// lines never interleave, and only in answer to the owner (never
// unprompted), so an owner that stops reading cannot block the network.
void Reply(const std::string &line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

std::string g_runId = "-";

// One line per change, with the run id: several runs may share a log.
void Log(const std::string &line) {
  std::fprintf(stderr, "detour-netsim[%s] t=%.3f %s\n", g_runId.c_str(),
               Simulator::Now().GetSeconds(), line.c_str());
}

void RunEvent(Event e) {
  Link *l = FindLink(e.link);
  std::string err = ApplyAction(*l, e.key, e.value);
  Log("event " + e.link + " " + e.key + (e.value.empty() ? "" : "=" + e.value) +
      (err.empty() ? "" : " failed: " + err));
}

std::string Status() {
  std::ostringstream os;
  for (auto &l : g_links) {
    os << " " << l.name << ":" << (l.chan->down ? "down" : "up")
       << ",delay=" << l.chan->delay.GetMicroSeconds() / 1000.0 << "ms"
       << ",jitter=" << l.chan->jitter.GetMicroSeconds() / 1000.0 << "ms"
       << ",loss=" << l.chan->loss << ",rate=" << l.rateBps << "bps"
       << ",passed=" << l.chan->passed[0] << "/" << l.chan->passed[1]
       << ",dropped=" << l.chan->drops[0] << "/" << l.chan->drops[1];
  }
  return os.str();
}

// Runs in the simulation thread, scheduled by the control thread.
void HandleCommand(std::string line) {
  std::istringstream in(line);
  std::string verb, name, key, value, extra;
  in >> verb >> name >> key >> value >> extra;
  if (verb == "quit") {
    Reply("ok quit");
    Simulator::Stop();
    return;
  }
  if (verb == "status") {
    Reply("ok" + Status());
    return;
  }
  Link *l = FindLink(name);
  if (verb != "link" || !l || key.empty() || !extra.empty()) {
    Reply("error unknown command '" + line +
          "' (link NAME down|up|delay|jitter|loss|rate [V], status, quit)");
    return;
  }
  std::string err = ApplyAction(*l, key, value);
  Log("command " + line + (err.empty() ? "" : " failed: " + err));
  Reply(err.empty() ? "ok " + line : "error " + err);
}

void StopNow() { Simulator::Stop(); }

void Ready() {
  Log("ready");
  Reply("ready");
}

// Reads commands until `quit` or EOF; EOF means the owner is gone.
void ControlThread() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty())
      continue;
    Simulator::ScheduleWithContext(Simulator::NO_CONTEXT, Seconds(0),
                                   &HandleCommand, line);
    if (line == "quit")
      return;
  }
  Simulator::ScheduleWithContext(Simulator::NO_CONTEXT, Seconds(0), &StopNow);
}

// Signals are blocked in every thread and taken here, where scheduling a
// stop is safe (it is not from a handler).
void SignalThread(sigset_t set) {
  int sig = 0;
  if (sigwait(&set, &sig) == 0) {
    std::fprintf(stderr, "detour-netsim[%s]: signal %d, stopping\n",
                 g_runId.c_str(), sig);
    Simulator::ScheduleWithContext(Simulator::NO_CONTEXT, Seconds(0), &StopNow);
  }
}

int Fail(const std::string &msg) {
  Reply("error " + msg);
  std::fprintf(stderr, "detour-netsim[%s]: %s\n", g_runId.c_str(), msg.c_str());
  return 2;
}

std::string ParseArgs(int argc, char **argv, std::vector<Event> *events) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if ((a == "--link" || a == "--event" || a == "--run-id") && i + 1 == argc)
      return a + " needs a value";
    std::string err;
    if (a == "--link")
      err = ParseLinkArg(argv[++i]);
    else if (a == "--event")
      err = ParseEventArg(argv[++i], events);
    else if (a == "--run-id")
      g_runId = argv[++i]; // the sweep finds us by it in /proc
    else
      err = "unknown argument '" + a + "' (see the header of detour-netsim.cc)";
    if (!err.empty())
      return err;
  }
  if (g_links.size() < 2)
    return "at least two --link are needed";
  for (auto &e : *events) {
    Link *l = FindLink(e.link);
    if (!l)
      return "--event names unknown link '" + e.link + "'";
    if (e.key != "down" && e.key != "up") {
      Link scratch = *l; // check the value now, apply it later
      std::string err = ApplyAction(scratch, e.key, e.value);
      if (!err.empty())
        return "--event " + e.link + ": " + err;
    } else if (!e.value.empty())
      return "--event " + e.link + ": " + e.key + " takes no value";
  }
  return "";
}

} // namespace

int main(int argc, char **argv) {
  // Before any thread exists, so that ns-3's reader threads inherit it.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN); // a dead owner is seen as stdin EOF instead

  // Real time, and real checksums: the kernels at both ends check them.
  GlobalValue::Bind("SimulatorImplementationType",
                    StringValue("ns3::RealtimeSimulatorImpl"));
  GlobalValue::Bind("ChecksumEnabled", BooleanValue(true));

  std::vector<Event> events;
  std::string err = ParseArgs(argc, argv, &events);
  if (!err.empty())
    return Fail(err);
  err = BuildTopology();
  if (!err.empty())
    return Fail(err);

  for (auto &e : events)
    Simulator::Schedule(e.at, &RunEvent, e);
  // After the nodes' own start-up events at t=0.
  Simulator::Schedule(MilliSeconds(1), &Ready);

  std::thread(ControlThread).detach();
  std::thread(SignalThread, set).detach();
  Simulator::Run();
  Simulator::Destroy();
  std::fprintf(stderr, "detour-netsim[%s]: stopped\n", g_runId.c_str());
  // The control thread may still sit in a read; exit without joining it.
  std::fflush(stdout);
  std::_Exit(0);
}
