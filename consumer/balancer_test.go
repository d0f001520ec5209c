package consumer

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func fakeMembers(n int, interests []string) []kmsg.JoinGroupResponseMember {
	var out []kmsg.JoinGroupResponseMember
	for i := range n {
		m := kmsg.NewJoinGroupResponseMember()
		m.MemberID = fmt.Sprintf("member-%02d", i)
		m.ProtocolMetadata = coPartitionBalancer{}.JoinGroupMetadata(interests, nil, 1)
		out = append(out, m)
	}
	return out
}

// balance runs the balancer and returns member => topic => partitions.
func balance(t *testing.T, ms []kmsg.JoinGroupResponseMember, topics map[string]int32) map[string]map[string][]int32 {
	t.Helper()
	mb, _, err := CoPartitionBalancer().MemberBalancer(ms)
	if err != nil {
		t.Fatal(err)
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(topics)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]int32{}
	for _, a := range into.IntoSyncAssignment() {
		m, err := kgo.ParseConsumerSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatal(err)
		}
		out[a.MemberID] = m
	}
	return out
}

func TestBalancerFallbackForPartialInterest(t *testing.T) {
	t.Parallel()
	ms := fakeMembers(2, []string{"b", "b.retry-1"})
	ms = append(ms, fakeMembers(1, []string{"b"})...)
	ms[2].MemberID = "member-zz"
	plan := balance(t, ms, map[string]int32{"b": 6, "b.retry-1": 6})
	n := 0
	for _, ts := range plan {
		n += len(ts["b.retry-1"])
	}
	if n != 6 {
		t.Fatalf("retry-1 partitions assigned: %d, want 6: %v", n, plan)
	}
	if len(plan["member-zz"]["b.retry-1"]) != 0 {
		t.Fatalf("member without interest got retry-1: %v", plan)
	}
}
