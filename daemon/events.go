package daemon

import (
	"sync"

	"github.com/verbatimhq/verbatim/daemon/api"
)

// broker hands the events of jobs (state changes, progress, segments) to whoever watches them
// (the API's event streams), and keeps the segments of the jobs in progress so that a watcher
// who comes late gets them all.
type broker struct {
	mu   sync.Mutex
	live map[int64]*liveJob
	subs map[int64]map[*subscription]struct{}
}

// liveJob is a job in progress: its segments so far and its last progress.
type liveJob struct {
	segments []api.Segment
	done     float64
}

// subscription is one watcher's events, queued without bound (a job's events are few and
// small) so that a slow reader misses none and a job never waits for it.
type subscription struct {
	mu     sync.Mutex
	events []api.Event
	notify chan struct{} // a value when events were added
}

func newBroker() *broker {
	return &broker{live: map[int64]*liveJob{}, subs: map[int64]map[*subscription]struct{}{}}
}

// subscribe registers a watcher of job id, and returns the job's segments so far (when it is in
// progress): the events after them come through the subscription.
func (b *broker) subscribe(id int64) (*subscription, []api.Segment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &subscription{notify: make(chan struct{}, 1)}
	if b.subs[id] == nil {
		b.subs[id] = map[*subscription]struct{}{}
	}
	b.subs[id][s] = struct{}{}
	var segs []api.Segment
	if l := b.live[id]; l != nil {
		segs = append(segs, l.segments...)
	}
	return s, segs
}

// unsubscribe ends a watcher's subscription.
func (b *broker) unsubscribe(id int64, s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs[id], s)
	if len(b.subs[id]) == 0 {
		delete(b.subs, id)
	}
}

// started marks job id in progress from its start (or its resume): its segments begin again.
func (b *broker) started(id int64, j api.Job) {
	b.mu.Lock()
	b.live[id] = &liveJob{done: j.Done}
	b.mu.Unlock()
	b.publish(id, api.Event{Type: "state", Job: &j})
}

// publish sends ev to the watchers of job id. A segment is kept for late watchers; progress
// that would go back (a window decoded again) is not sent; an end forgets the job.
func (b *broker) publish(id int64, ev api.Event) {
	b.mu.Lock()
	l := b.live[id]
	switch {
	case ev.Segment != nil && l != nil:
		l.segments = append(l.segments, *ev.Segment)
	case ev.Progress != nil && l != nil:
		if ev.Progress.Done < l.done {
			b.mu.Unlock()
			return
		}
		l.done = ev.Progress.Done
	case ev.Ended() || (ev.Type == "state" && ev.Job != nil && ev.Job.State != "running"):
		delete(b.live, id)
	}
	subs := make([]*subscription, 0, len(b.subs[id]))
	for s := range b.subs[id] {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// take returns the events queued for s, and empties its queue.
func (s *subscription) take() []api.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.events
	s.events = nil
	return ev
}
