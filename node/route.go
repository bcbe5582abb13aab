package node

// LeaseHolder reports the address of the node that holds topic's lease,
// where this node can tell it and the holder is another live process: this
// node's elector of the topic is parked behind the holder (it knows the
// holder, and no change of the lock was signalled since), and the peer
// watch holds a connection to the holder's process now. It costs no store
// operation: it is asked on every append (forward.Config.Route).
//
// It may name a node that has just lost the lease (the change's signal
// not yet heard): an append sent there is appended all the same, only not
// in the publisher's own write. Without the peer watch it reports false.
func (n *Node) LeaseHolder(topic string) (addr string, ok bool) {
	if n.peers == nil {
		return "", false
	}
	n.mu.Lock()
	e := n.electors[topic]
	n.mu.Unlock()
	if e == nil {
		return "", false
	}
	holder, ok := e.Parked()
	if !ok || holder == n.cfg.Node {
		return "", false
	}
	return n.peers.reach(holder)
}
