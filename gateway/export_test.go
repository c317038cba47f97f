package gateway

// PausePump stops g's pump between two events until release is called, so that
// events pile up in its inbox as they do when the gateway is behind; waiting
// reports how many messages the inbox holds.
func PausePump(g *Gateway) (waiting func() int, release func()) {
	held, entered := make(chan struct{}), make(chan struct{})
	g.pump.post(func() { close(entered); <-held })
	<-entered
	return func() int { return len(g.pump.in) }, func() { close(held) }
}
