package election

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// owner is a coordinator for Table's tests: its items are a count per partition, and its
// hooks record every step, in order. A step whose name is gated waits until the test opens it.
// Everything runs in a synctest bubble, so synctest.Wait leaves only held steps running.
type owner struct {
	mu    sync.Mutex // the owner's lock: guards tab and items
	wg    sync.WaitGroup
	stop  chan struct{}
	tab   *Table[[]string]
	items map[int32]int // the items a loaded partition holds

	emu     sync.Mutex
	events  []string
	gates   map[string]chan struct{} // step name → closed when it may go on
	failing map[int32]bool           // loads of these partitions fail (retried)
}

func newOwner() *owner {
	o := &owner{stop: make(chan struct{}), items: map[int32]int{}, gates: map[string]chan struct{}{}, failing: map[int32]bool{}}
	o.tab = NewTable(Config[[]string]{
		Topic: "t", Items: "items", Log: slog.New(slog.DiscardHandler),
		Mu: &o.mu, WG: &o.wg, Stop: o.stop, Load: o.load, Release: o.release,
	})
	return o
}

// run runs f with a new owner in a bubble, then stops the owner, opens every gate and checks
// that every goroutine of the Table ends.
func run(t *testing.T, f func(t *testing.T, o *owner)) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner()
		f(t, o)
		close(o.stop)
		o.emu.Lock()
		for name := range o.gates {
			o.openLocked(name)
		}
		o.emu.Unlock()
		o.wg.Wait()
	})
}

// step records name, then waits while it is gated.
func (o *owner) step(format string, args ...any) {
	name := fmt.Sprintf(format, args...)
	o.emu.Lock()
	o.events = append(o.events, name)
	gate := o.gates[name]
	o.emu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (o *owner) load(p int32, e *Election[[]string]) error {
	o.step("load %d@%d", p, e.Epoch())
	o.mu.Lock()
	defer o.mu.Unlock()
	o.emu.Lock()
	failing := o.failing[p]
	o.emu.Unlock()
	switch {
	case !o.tab.CurrentLocked(p, e):
		o.step("abandoned %d@%d", p, e.Epoch())
		return ErrEnded
	case failing:
		o.step("failed %d@%d", p, e.Epoch())
		return errors.New("not there yet")
	}
	o.items[p] = 2
	e.Data = append(e.Data, "loaded")
	e.SetLoadedLocked()
	o.step("loaded %d@%d", p, e.Epoch())
	return nil
}

func (o *owner) release(p int32, e *Election[[]string]) (int, func()) {
	n := o.items[p]
	delete(o.items, p)
	o.step("release %d@%d n=%d", p, e.Epoch(), n)
	if n == 0 {
		return 0, nil
	}
	return n, func() {
		o.step("unload %d@%d", p, e.Epoch())
		o.step("unloaded %d@%d", p, e.Epoch())
	}
}

// gate makes the step name wait until open(name).
func (o *owner) gate(name string) {
	o.emu.Lock()
	o.gates[name] = make(chan struct{})
	o.emu.Unlock()
}

// open lets the step name go on, and waits until every goroutine is blocked again.
func (o *owner) open(name string) {
	o.emu.Lock()
	o.openLocked(name)
	o.emu.Unlock()
	synctest.Wait()
}

func (o *owner) openLocked(name string) {
	if g := o.gates[name]; g != nil {
		close(g)
		delete(o.gates, name)
	}
}

// elect and resign call the Table as a coordinator does, then wait until every goroutine is
// blocked.
func (o *owner) elect(p, epoch int32) {
	o.mu.Lock()
	o.tab.ElectLocked(p, epoch)
	o.mu.Unlock()
	synctest.Wait()
}

func (o *owner) resign(p, epoch int32) {
	o.mu.Lock()
	o.tab.ResignLocked(p, epoch)
	o.mu.Unlock()
	synctest.Wait()
}

// want checks the steps recorded since the last call, in order.
func (o *owner) want(t *testing.T, steps ...string) {
	t.Helper()
	o.emu.Lock()
	got := o.events
	o.events = nil
	o.emu.Unlock()
	if len(got) == 0 && len(steps) == 0 {
		return
	}
	if !reflect.DeepEqual(got, steps) {
		t.Fatalf("steps\n got %q\nwant %q", got, steps)
	}
}

// wantState checks partition p's highest epoch seen and its election ("-": none; "5
// loading", "5 loaded"), whether any partition is loading, and the partitions whose unloading
// is in progress.
func (o *owner) wantState(t *testing.T, p int32, epoch, elected string, loading bool, unloading string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	gotEpoch, gotElected := "-", "-"
	if last, ok := o.tab.epochs[p]; ok {
		gotEpoch = fmt.Sprint(last)
	}
	if e := o.tab.ElectionLocked(p); e != nil {
		gotElected = fmt.Sprintf("%d loading", e.Epoch())
		if e.LoadedLocked() {
			gotElected = fmt.Sprintf("%d loaded", e.Epoch())
		}
	}
	var un []int32
	for q := range o.tab.unloading {
		un = append(un, q)
	}
	if gotEpoch != epoch || gotElected != elected || o.tab.LoadingLocked() != loading || fmt.Sprint(un) != unloading {
		t.Fatalf("partition %d: epoch %s, elected %s, loading %v, unloading %v; want %s, %s, %v, %s",
			p, gotEpoch, gotElected, o.tab.LoadingLocked(), un, epoch, elected, loading, unloading)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestMaybeUpdateCoordinatorEpoch: the highest leader epoch seen per partition is kept; an
// election or resignation below it is stale and ignored; an election at or below the epoch of
// the election served is a no-op (nothing is read again, nothing released); a resignation
// ends the election (its items released and unloaded); an election at the epoch of the
// resignation applies; a resignation with an unknown epoch (-1) always applies and keeps the
// epoch; partitions are independent.
func TestMaybeUpdateCoordinatorEpoch(t *testing.T) {
	run(t, func(t *testing.T, o *owner) {
		o.wantState(t, 0, "-", "-", false, "[]")
		o.resign(0, 3) // never elected: only the epoch is kept
		o.want(t)
		o.wantState(t, 0, "3", "-", false, "[]")
		o.elect(0, 2)
		o.want(t)
		o.elect(0, 5)
		o.want(t, "load 0@5", "loaded 0@5")
		o.wantState(t, 0, "5", "5 loaded", false, "[]")

		o.elect(0, 5)
		o.elect(0, 4)
		o.resign(0, 4)
		o.want(t)
		o.wantState(t, 0, "5", "5 loaded", false, "[]")

		o.mu.Lock()
		e5 := o.tab.ElectionLocked(0)
		o.mu.Unlock()
		o.resign(0, 7)
		o.want(t, "release 0@5 n=2", "unload 0@5", "unloaded 0@5")
		o.wantState(t, 0, "7", "-", false, "[]")
		o.mu.Lock()
		data := e5.Data
		o.mu.Unlock()
		if !closed(e5.Done()) || !reflect.DeepEqual(data, []string{"loaded"}) {
			t.Fatalf("ended election: done %v, data %q", closed(e5.Done()), data)
		}
		o.elect(0, 6) // older than the resignation
		o.resign(0, 6)
		o.want(t)
		o.wantState(t, 0, "7", "-", false, "[]")

		o.elect(0, 7)
		o.want(t, "load 0@7", "loaded 0@7")
		o.wantState(t, 0, "7", "7 loaded", false, "[]")
		o.resign(0, -1)
		o.want(t, "release 0@7 n=2", "unload 0@7", "unloaded 0@7")
		o.wantState(t, 0, "7", "-", false, "[]")
		o.resign(0, -1) // nothing elected: nothing happens
		o.want(t)

		o.elect(1, 0)
		o.want(t, "load 1@0", "loaded 1@0")
		o.wantState(t, 1, "0", "0 loaded", false, "[]")
		o.wantState(t, 0, "7", "-", false, "[]")
	})
}

// TestNewerElectionAbandonsLoad: an election newer than one still loading ends it (its Done
// closed, nothing to unload) and starts its own load at once; the older load, once it has read
// its log, finds its election no longer current and installs nothing. Neither ElectLocked nor
// ResignLocked waits for a load.
func TestNewerElectionAbandonsLoad(t *testing.T) {
	run(t, func(t *testing.T, o *owner) {
		o.gate("load 0@8")
		o.gate("load 0@9")
		o.elect(0, 8)
		o.want(t, "load 0@8")
		o.wantState(t, 0, "8", "8 loading", true, "[]")
		o.mu.Lock()
		e8 := o.tab.ElectionLocked(0)
		o.mu.Unlock()

		o.elect(0, 9)
		o.want(t, "release 0@8 n=0", "load 0@9")
		o.wantState(t, 0, "9", "9 loading", true, "[]")
		o.mu.Lock()
		e9 := o.tab.ElectionLocked(0)
		current8 := o.tab.CurrentLocked(0, e8)
		o.mu.Unlock()
		if !closed(e8.Done()) || closed(e9.Done()) || current8 {
			t.Fatalf("done 8 %v, done 9 %v, 8 current %v", closed(e8.Done()), closed(e9.Done()), current8)
		}

		o.open("load 0@8")
		o.want(t, "abandoned 0@8")
		o.wantState(t, 0, "9", "9 loading", true, "[]")
		o.open("load 0@9")
		o.want(t, "loaded 0@9")
		o.wantState(t, 0, "9", "9 loaded", false, "[]")

		// A resignation abandons a load the same way.
		o.gate("load 1@1")
		o.elect(1, 1)
		o.resign(1, 2)
		o.open("load 1@1")
		o.want(t, "load 1@1", "release 1@1 n=0", "abandoned 1@1")
		o.wantState(t, 1, "2", "-", false, "[]")
	})
}

// TestNewerElectionLoadsAfterUnload: a newer election of a loaded partition releases the older
// one's items at once, and loads only once they are unloaded, so that the load reads every
// append they made. Unloads of one partition run in the order of their elections, each after
// the previous one; an election ended while it waits for them never loads.
func TestNewerElectionLoadsAfterUnload(t *testing.T) {
	run(t, func(t *testing.T, o *owner) {
		o.elect(0, 1)
		o.want(t, "load 0@1", "loaded 0@1")
		o.gate("unload 0@1")
		o.elect(0, 2)
		o.want(t, "release 0@1 n=2", "unload 0@1")
		o.wantState(t, 0, "2", "2 loading", true, "[0]")
		o.open("unload 0@1")
		o.want(t, "unloaded 0@1", "load 0@2", "loaded 0@2")
		o.wantState(t, 0, "2", "2 loaded", false, "[]")

		// Two unloads in a row: election 3's waits for election 2's, and election 4 for both.
		o.gate("unload 0@2")
		o.resign(0, 3)
		o.want(t, "release 0@2 n=2", "unload 0@2")
		o.elect(0, 3) // waits for the unload of 2
		o.mu.Lock()
		o.items[0] = 1 // as if election 3 held an item
		o.mu.Unlock()
		o.elect(0, 4)
		o.want(t, "release 0@3 n=1")
		o.wantState(t, 0, "4", "4 loading", true, "[0]")
		o.open("unload 0@2")
		o.want(t, "unloaded 0@2", "unload 0@3", "unloaded 0@3", "load 0@4", "loaded 0@4")
		o.wantState(t, 0, "4", "4 loaded", false, "[]")
	})
}

// TestFailedLoadRetried: a load that fails is retried with backoff (RetryMin, doubling) while
// the partition answers as loading, until it loads, or its election ends, or the owner stops.
func TestFailedLoadRetried(t *testing.T) {
	run(t, func(t *testing.T, o *owner) {
		o.failing[0], o.failing[1] = true, true
		o.elect(0, 1)
		o.want(t, "load 0@1", "failed 0@1")
		time.Sleep(RetryMin + 3*RetryMin/2) // the retries at RetryMin and after 2*RetryMin more
		synctest.Wait()
		o.want(t, "load 0@1", "failed 0@1")
		time.Sleep(RetryMin)
		synctest.Wait()
		o.want(t, "load 0@1", "failed 0@1")
		o.wantState(t, 0, "1", "1 loading", true, "[]")
		o.emu.Lock()
		o.failing[0] = false
		o.emu.Unlock()
		time.Sleep(4 * RetryMin)
		synctest.Wait()
		o.want(t, "load 0@1", "loaded 0@1")
		o.wantState(t, 0, "1", "1 loaded", false, "[]")

		o.elect(1, 1)
		o.want(t, "load 1@1", "failed 1@1")
		o.resign(1, 1)
		o.want(t, "release 1@1 n=0")
		time.Sleep(RetryMax)
		synctest.Wait()
		o.want(t) // no retry once the election ended

		o.elect(1, 2)
		o.want(t, "load 1@2", "failed 1@2")
		close(o.stop)
		o.stop = make(chan struct{}) // for run
		synctest.Wait()
		time.Sleep(RetryMax)
		synctest.Wait()
		o.want(t) // no retry once the owner stops
	})
}
