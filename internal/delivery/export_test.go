package delivery

// WaitingOffers is how many Offers wait for room, so a test can tell that
// one has started waiting before it makes room.
func (d *Dispatcher) WaitingOffers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waiting
}
