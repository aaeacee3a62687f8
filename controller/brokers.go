package controller

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Broker lifecycle on the leader: registration, heartbeats, fencing, controlled shutdown.
//
//	               RegisterBroker             Heartbeat
//	(unregistered) ─────────────► fenced ◄──────────────► unfenced
//	                                 ▲   session expired,     │
//	                                 │   controlled shutdown  │
//	                                 └────────────────────────┘
//
// Invariant: a fenced broker leads no partition. Fencing (session expiry, controlled
// shutdown, a new incarnation's registration, unregistration) writes, in the same entry as
// the state change, the partition changes that move its leaderships to another eligible ISR
// member and drop it from every ISR it is not the last member of. With no eligible ISR
// member a partition goes leaderless, unless unclean.leader.election.enable lets any
// unfenced replica lead (its ISR becomes just that replica).
//
// Heartbeats are not logged: the leader keeps the time of each broker's last one in memory
// (leaderSession.hb) and writes only the transitions.

// BrokerRegistration is what a broker sends when it starts.
type BrokerRegistration struct {
	ID            int32
	IncarnationID [16]byte // random, new each time the broker process starts
	Endpoints     []Endpoint
	Rack          *string
}

// HeartbeatResult answers a broker heartbeat.
type HeartbeatResult struct {
	// Fenced: the broker may not lead or be in ISRs. A registered broker starts fenced and
	// is unfenced by its first heartbeat that does not ask to shut down.
	Fenced bool
	// ShouldShutDown: a controlled shutdown finished (the broker leads nothing); the broker
	// may stop.
	ShouldShutDown bool
}

// RegisterBroker registers a broker and returns its broker epoch (the Raft index of the
// registration), which its heartbeats, AlterPartition and AllocateProducerIDs must carry.
// A retry with the same incarnation and registration returns the same epoch. A new
// incarnation while the previous one's session is alive is refused with
// DUPLICATE_BROKER_REGISTRATION (retry after the session timeout); otherwise the previous
// incarnation is fenced in the same entry. Leader only.
func (c *Controller) RegisterBroker(ctx context.Context, reg BrokerRegistration) (int64, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	s, err := c.lead()
	if err != nil {
		return -1, err
	}
	if reg.ID < 0 {
		return -1, kafkaErr(CodeInvalidRequest, "Invalid broker id %d.", reg.ID)
	}
	img := c.Image()
	var recs []Record
	if old := img.brokers[reg.ID]; old != nil {
		if old.IncarnationID == reg.IncarnationID && sameRegistration(old, reg) {
			c.touch(s, reg.ID)
			return old.Epoch, nil
		}
		if old.IncarnationID != reg.IncarnationID && !old.Fenced && c.sessionAlive(s, reg.ID) {
			return -1, kafkaErr(CodeDuplicateBrokerRegistration, "Another broker is registered with that broker id.")
		}
		if !old.Fenced {
			recs = append(c.removalRecords(img, reg.ID), &FenceBrokerRecord{BrokerID: reg.ID, BrokerEpoch: old.Epoch})
		}
	}
	recs = append(recs, &RegisterBrokerRecord{BrokerID: reg.ID, IncarnationID: reg.IncarnationID,
		Endpoints: reg.Endpoints, Rack: reg.Rack})
	idx, err := c.propose(ctx, recs...)
	if err != nil {
		return -1, err
	}
	c.touch(s, reg.ID)
	c.log.Info("registered broker", "broker", reg.ID, "epoch", idx)
	return int64(idx), nil
}

// ControllerRegistration is what a node with the controller role sends when it starts
// (KIP-919): its id and the Kafka listeners that answer the controller APIs.
type ControllerRegistration struct {
	ID            int32
	IncarnationID [16]byte
	Endpoints     []Endpoint
}

// RegisterController records a controller's registration; a retry of the registration the
// Image already holds writes nothing. Leader only.
func (c *Controller) RegisterController(ctx context.Context, reg ControllerRegistration) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return err
	}
	if reg.ID < 0 {
		return kafkaErr(CodeInvalidRequest, "Invalid controller id %d.", reg.ID)
	}
	if old := c.Image().controllers[reg.ID]; old != nil && old.IncarnationID == reg.IncarnationID && slices.Equal(old.Endpoints, reg.Endpoints) {
		return nil
	}
	if _, err := c.propose(ctx, &RegisterControllerRecord{ControllerID: reg.ID, IncarnationID: reg.IncarnationID, Endpoints: reg.Endpoints}); err != nil {
		return err
	}
	c.log.Info("registered controller", "controller", reg.ID)
	return nil
}

func sameRegistration(b *BrokerInfo, reg BrokerRegistration) bool {
	return slices.Equal(b.Endpoints, reg.Endpoints) &&
		(b.Rack == nil) == (reg.Rack == nil) && (b.Rack == nil || *b.Rack == *reg.Rack)
}

// Heartbeat records that a broker is alive and applies the transition it implies: a fenced
// broker is unfenced (and leads the leaderless partitions it can), and wantShutdown starts
// a controlled shutdown. Errors: BROKER_ID_NOT_REGISTERED, STALE_BROKER_EPOCH (re-register).
// Leader only.
func (c *Controller) Heartbeat(ctx context.Context, brokerID int32, brokerEpoch int64, wantShutdown bool) (HeartbeatResult, error) {
	// Fast path, without opMu: no transition needed.
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s == nil || c.raft.State() != raft.Leader {
		_, err := c.lead()
		return HeartbeatResult{}, err
	}
	b, err := checkBrokerEpoch(c.Image(), brokerID, brokerEpoch, CodeBrokerIDNotRegistered)
	if err != nil {
		return HeartbeatResult{}, err
	}
	c.touch(s, brokerID)
	if b.Fenced == wantShutdown {
		return c.heartbeatResult(c.Image(), brokerID), nil
	}

	c.opMu.Lock()
	defer c.opMu.Unlock()
	if s, err = c.lead(); err != nil {
		return HeartbeatResult{}, err
	}
	img := c.Image()
	if b, err = checkBrokerEpoch(img, brokerID, brokerEpoch, CodeBrokerIDNotRegistered); err != nil {
		return HeartbeatResult{}, err
	}
	c.touch(s, brokerID)
	var recs []Record
	switch {
	case wantShutdown && !b.Fenced:
		recs = append(c.removalRecords(img, brokerID), &FenceBrokerRecord{BrokerID: brokerID, BrokerEpoch: b.Epoch})
		c.log.Info("controlled shutdown of broker", "broker", brokerID)
	case !wantShutdown && b.Fenced:
		recs = append([]Record{&UnfenceBrokerRecord{BrokerID: brokerID, BrokerEpoch: b.Epoch}}, c.unfenceRecords(img, brokerID)...)
		c.log.Info("unfencing broker", "broker", brokerID)
	}
	if len(recs) > 0 {
		if _, err := c.propose(ctx, recs...); err != nil {
			return HeartbeatResult{}, err
		}
	}
	return c.heartbeatResult(c.Image(), brokerID), nil
}

func (c *Controller) heartbeatResult(img *Image, id int32) HeartbeatResult {
	b := img.brokers[id]
	if b == nil {
		return HeartbeatResult{Fenced: true}
	}
	return HeartbeatResult{Fenced: b.Fenced, ShouldShutDown: b.Fenced && !leadsAny(img, id)}
}

// ControlledShutdown fences a broker that is about to stop: its leaderships move to other
// ISR members and it leaves the ISRs it is not the last member of. When it returns the
// broker leads nothing and may stop. A later heartbeat without wantShutdown unfences it
// again. Leader only.
func (c *Controller) ControlledShutdown(ctx context.Context, brokerID int32) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return err
	}
	img := c.Image()
	b := img.brokers[brokerID]
	if b == nil {
		return kafkaErr(CodeBrokerIDNotRegistered, "Broker %d is not registered.", brokerID)
	}
	if b.Fenced {
		return nil
	}
	recs := append(c.removalRecords(img, brokerID), &FenceBrokerRecord{BrokerID: brokerID, BrokerEpoch: b.Epoch})
	_, err := c.propose(ctx, recs...)
	return err
}

// UnregisterBroker removes a broker's registration after taking it out of leaderships and
// ISRs as fencing does. Leader only.
func (c *Controller) UnregisterBroker(ctx context.Context, brokerID int32) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	s, err := c.lead()
	if err != nil {
		return err
	}
	img := c.Image()
	b := img.brokers[brokerID]
	if b == nil {
		return kafkaErr(CodeBrokerIDNotRegistered, "Broker %d is not registered.", brokerID)
	}
	recs := append(c.removalRecords(img, brokerID), &UnregisterBrokerRecord{BrokerID: brokerID, BrokerEpoch: b.Epoch})
	if _, err := c.propose(ctx, recs...); err != nil {
		return err
	}
	c.mu.Lock()
	delete(s.hb, brokerID)
	c.mu.Unlock()
	return nil
}

// checkBrokerEpoch returns the registration of brokerID when brokerEpoch is its current
// epoch; an unknown broker gets unknownCode.
func checkBrokerEpoch(img *Image, brokerID int32, brokerEpoch int64, unknownCode int16) (*BrokerInfo, error) {
	b := img.brokers[brokerID]
	if b == nil {
		return nil, kafkaErr(unknownCode, "No broker registration found for broker %d.", brokerID)
	}
	if b.Epoch != brokerEpoch {
		return nil, kafkaErr(CodeStaleBrokerEpoch, "Expected broker epoch %d, but got broker epoch %d.", b.Epoch, brokerEpoch)
	}
	return b, nil
}

func (c *Controller) touch(s *leaderSession, id int32) {
	c.mu.Lock()
	if c.session == s {
		s.hb[id] = time.Now()
	}
	c.mu.Unlock()
}

func (c *Controller) sessionAlive(s *leaderSession, id int32) bool {
	c.mu.Lock()
	last, ok := s.hb[id]
	c.mu.Unlock()
	return ok && time.Since(last) <= c.cfg.SessionTimeout
}

// fenceStaleBrokers fences, one entry each, the unfenced brokers whose session expired.
func (c *Controller) fenceStaleBrokers(s *leaderSession) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	for _, b := range c.Image().Brokers() {
		if !c.current(s) {
			return
		}
		if b.Fenced {
			continue
		}
		c.mu.Lock()
		last, ok := s.hb[b.ID]
		if !ok { // registered since we took over, by a record we did not write
			s.hb[b.ID], last = time.Now(), time.Now()
		}
		c.mu.Unlock()
		if time.Since(last) <= c.cfg.SessionTimeout {
			continue
		}
		img := c.Image()
		if cur := img.brokers[b.ID]; cur == nil || cur.Fenced || cur.Epoch != b.Epoch {
			continue
		}
		c.log.Info("fencing broker: session expired", "broker", b.ID, "last_heartbeat", last)
		recs := append(c.removalRecords(img, b.ID), &FenceBrokerRecord{BrokerID: b.ID, BrokerEpoch: b.Epoch})
		ctx, cancel := context.WithTimeout(s.ctx, proposeTimeout)
		_, err := c.propose(ctx, recs...)
		cancel()
		if err != nil {
			c.log.Warn("fencing broker failed", "broker", b.ID, "err", err)
			return
		}
	}
}

// leadsAny reports whether broker id leads a partition.
func leadsAny(img *Image, id int32) bool {
	for _, t := range img.topics {
		for _, p := range t.Partitions {
			if p.Leader == id {
				return true
			}
		}
	}
	return false
}
