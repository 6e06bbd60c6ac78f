package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/store"
	"github.com/parapheur/parapheur/store/bolt"
	"github.com/parapheur/parapheur/store/redis"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/engine"
)

// sentTask reports each prepared item on a channel and delivers it.
type sentTask chan string

func (s sentTask) Prepare(_ context.Context, it *store.Item) (Delivery, error) {
	s <- it.ID
	return Delivery{}, nil
}

func (s sentTask) Attempt(context.Context) Attempt {
	return Attempt{Outcome: workflow.OutcomeDelivered, Answer: "250 2.0.0 Ok"}
}

// wakeTest runs a worker on worker with a poll of a minute, waits until it
// found its queue empty, queues an item through producer, and expects the
// worker to carry it out long before the poll would have found it.
func wakeTest(t *testing.T, worker, producer store.Store) {
	const poll = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := &Queue{Store: worker, Name: engine.MailQueue}
	sent, idle := make(sentTask, 1), make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		q.Work(ctx, "worker", sent, poll, func() {
			select {
			case idle <- struct{}{}:
			default:
			}
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never found its queue empty")
	}
	if err := producer.Enqueue(ctx, store.Item{ID: "refusal/1", Queue: engine.MailQueue,
		Payload: []byte(`{"notice":"refusal"}`), NotBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-sent:
		if id != "refusal/1" {
			t.Errorf("sent %s", id)
		}
	case <-time.After(poll / 4):
		t.Fatalf("the queued item was not sent within %v (poll %v): no wake-up", poll/4, poll)
	}
}

// An item queued in the process wakes the worker.
func TestWakeInProcess(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wakeTest(t, st, st)
}

// An item queued by another replica wakes the worker through Redis.
func TestWakeAcrossReplicas(t *testing.T) {
	srv := testrig.Redis(t)
	var clients [2]store.Store
	for i := range clients {
		c, err := redis.Open(context.Background(), srv.URL(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	wakeTest(t, clients[0], clients[1])
}
