-- Indexes for the management API's lists and look-ups.

-- Endpoints newest first, across tenants (per tenant: endpoints_tenant_created_idx).
CREATE INDEX endpoints_created_idx ON endpoints (created_at DESC, id DESC);
-- Events newest first (the events list; its tenant and type filters read along it).
CREATE INDEX events_created_idx ON events (created_at DESC, id DESC);
-- Which endpoints an event fanned out to.
CREATE INDEX deliveries_event_idx ON deliveries (event_id);
