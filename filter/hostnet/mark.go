package hostnet

// AgentMark is the packet mark (SO_MARK) carried by every socket the agent
// opens itself: DNS upstream queries, the indicator feed, telemetry uploads.
// The DNS redirect and the NFQUEUE rules exempt packets with this mark, so
// the agent never intercepts itself and never loops through its own proxy.
// Owner-UID matching cannot be the exemption: the agent runs as root, like
// many other processes on the host.
const AgentMark uint32 = 0x6e770010 // "nw" 0x10
