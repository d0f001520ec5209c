package consumer

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CoPartitionBalancer returns an eager kgo.GroupBalancer that assigns
// partition numbers, not topic partitions, to members: partition p of every
// topic the group consumes goes to the same member. Members are sorted by
// instance id, then member id, and partition numbers are split among them in
// contiguous ranges (the first len%members members get one more), so the
// plan is deterministic.
//
// A topic that the owner of partition p does not subscribe to (members with
// different subscriptions, for example during a rolling change of the retry
// tiers) gets its partition p assigned to one of the members that do, by the
// same range rule, so no partition is left without a consumer.
func CoPartitionBalancer() kgo.GroupBalancer { return coPartitionBalancer{} }

// CoPartitionProtocol is the protocol name the balancer registers with the
// group coordinator.
const CoPartitionProtocol = "hookline-copartition"

type coPartitionBalancer struct{}

func (coPartitionBalancer) ProtocolName() string { return CoPartitionProtocol }
func (coPartitionBalancer) IsCooperative() bool  { return false }

func (coPartitionBalancer) JoinGroupMetadata(interests []string, _ map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	return meta.AppendTo(nil)
}

func (coPartitionBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b coPartitionBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance.
func (coPartitionBalancer) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	type member struct {
		m      *kmsg.JoinGroupResponseMember
		topics map[string]bool
	}
	var all []member
	b.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		ts := make(map[string]bool, len(meta.Topics))
		for _, t := range meta.Topics {
			ts[t] = true
		}
		all = append(all, member{m, ts})
	})
	slices.SortFunc(all, func(a, b member) int {
		ai, bi := "", ""
		if a.m.InstanceID != nil {
			ai = *a.m.InstanceID
		}
		if b.m.InstanceID != nil {
			bi = *b.m.InstanceID
		}
		return cmp.Or(cmp.Compare(ai, bi), cmp.Compare(a.m.MemberID, b.m.MemberID))
	})

	plan := b.NewPlan()
	if len(all) == 0 {
		return plan
	}
	var maxParts int32
	for _, n := range topics {
		maxParts = max(maxParts, n)
	}
	owners := rangeOwners(int(maxParts), len(all))

	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		n := topics[t]
		var interested []int // indexes into all, for the fallback
		for i, m := range all {
			if m.topics[t] {
				interested = append(interested, i)
			}
		}
		if len(interested) == 0 {
			continue
		}
		var fallback []int
		for p := int32(0); p < n; p++ {
			owner := owners[p]
			if !all[owner].topics[t] {
				if fallback == nil {
					fallback = rangeOwners(int(n), len(interested))
				}
				owner = interested[fallback[p]]
			}
			plan.AddPartition(all[owner].m, t, p)
		}
	}
	return plan
}

// rangeOwners splits partitions 0..parts-1 among members in contiguous
// ranges and returns, for each partition, the index of its member.
func rangeOwners(parts, members int) []int {
	out := make([]int, parts)
	if members <= 0 {
		return out
	}
	div, rem := parts/members, parts%members
	p := 0
	for m := 0; m < members; m++ {
		n := div
		if m < rem {
			n++
		}
		for i := 0; i < n; i++ {
			out[p] = m
			p++
		}
	}
	return out
}
