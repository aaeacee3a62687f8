package controller

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func imageWithBrokers(racks map[int32]*string, fenced ...int32) *Image {
	img := emptyImage()
	for id, r := range racks {
		img.brokers[id] = &BrokerInfo{ID: id, Rack: r, Fenced: contains(fenced, id)}
	}
	return img
}

func TestStripedPlacementRackUnaware(t *testing.T) {
	img := imageWithBrokers(map[int32]*string{1: nil, 2: nil, 3: nil, 4: nil})
	got, err := placeReplicas(img, 0, 8, 3, zeroRand{})
	if err != nil {
		t.Fatal(err)
	}
	// Start 0, shift 0: first replicas 1,2,3,4; followers at +1,+2, then (after the wrap)
	// at +2,+3.
	want := [][]int32{{1, 2, 3}, {2, 3, 4}, {3, 4, 1}, {4, 1, 2}, {1, 3, 4}, {2, 4, 1}, {3, 1, 2}, {4, 2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("placement %v, want %v", got, want)
	}
	// Fenced brokers are left out.
	img = imageWithBrokers(map[int32]*string{1: nil, 2: nil, 3: nil}, 2)
	got, _ = placeReplicas(img, 0, 2, 2, zeroRand{})
	if want := [][]int32{{1, 3}, {3, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("with a fenced broker: %v, want %v", got, want)
	}
	if _, err := placeReplicas(img, 0, 1, 3, zeroRand{}); err == nil {
		t.Fatal("rf 3 on 2 unfenced brokers placed")
	}
}

func TestRackAwarePlacementSpreadsRacks(t *testing.T) {
	a, b, c := strp("a"), strp("b"), strp("c")
	img := imageWithBrokers(map[int32]*string{1: a, 2: a, 3: b, 4: b, 5: c, 6: c})
	ids, _ := rackAlternated(img.Brokers(), true)
	if want := []int32{1, 3, 5, 2, 4, 6}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("rack-alternated order %v, want %v", ids, want)
	}
	rackOf := func(id int32) string { return *img.Broker(id).Rack }
	for seed := range uint64(20) {
		got, err := placeReplicas(img, 0, 12, 3, rand.New(rand.NewPCG(seed, seed)))
		if err != nil {
			t.Fatal(err)
		}
		leaders, replicas := map[int32]int{}, map[int32]int{}
		for p, rs := range got {
			racks := map[string]bool{}
			for _, r := range rs {
				racks[rackOf(r)] = true
				replicas[r]++
			}
			if len(racks) != 3 {
				t.Fatalf("seed %d partition %d: replicas %v on racks %v", seed, p, rs, racks)
			}
			leaders[rs[0]]++
		}
		for id := int32(1); id <= 6; id++ {
			if leaders[id] != 2 || replicas[id] != 6 {
				t.Fatalf("seed %d: broker %d leads %d and holds %d replicas: %v", seed, id, leaders[id], replicas[id], got)
			}
		}
	}
	// Fewer racks than replicas: every rack is used before one repeats.
	img = imageWithBrokers(map[int32]*string{1: a, 2: a, 3: b, 4: b})
	got, _ := placeReplicas(img, 0, 4, 3, zeroRand{})
	for _, rs := range got {
		if racks := map[string]bool{rackOf(rs[0]): true, rackOf(rs[1]): true}; len(racks) != 2 {
			t.Fatalf("first two replicas %v share a rack", rs)
		}
	}
	// Brokers without a rack form one rack of their own.
	img = imageWithBrokers(map[int32]*string{1: a, 2: nil, 3: nil})
	got, _ = placeReplicas(img, 0, 3, 2, zeroRand{})
	for _, rs := range got {
		if !contains(rs, 1) {
			t.Fatalf("replicas %v: both on the no-rack group", rs)
		}
	}
}
