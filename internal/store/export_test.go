package store

// The SQL of the list queries, for tests of their plans.
var (
	DeliveriesQuery = deliveriesQuery
	EventsQuery     = eventsQuery
)
