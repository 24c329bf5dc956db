// Command go-client runs one produce/consume scenario with sarama or franz-go against a Kafka
// broker and prints the observable results as one JSON object (interop_tests/test_go_clients.py
// runs it against real Kafka and pyggy and compares).
//
//	go-client -lib sarama|franz -brokers host:port -topic T -group G -n N
//
// Steps: create topic T with 3 partitions (then again: the error), produce N records (partition
// i%3, key, value, two headers, an explicit timestamp) with the library's idempotent producer,
// consume them in group G from the earliest offset, commit, close, then read the group's
// committed offsets and its description.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const partitions = 3

var base = time.UnixMilli(1_700_000_000_000)

type result struct {
	Lib         string             `json:"lib"`
	Create      string             `json:"create"`
	CreateAgain string             `json:"create_again"`
	Produced    map[string][]int64 `json:"produced"` // partition -> offsets in produce order
	Consumed    int                `json:"consumed"`
	Intact      int                `json:"intact"` // key, value, headers and timestamp as produced
	Assigned    []int32            `json:"assigned"`
	Committed   map[string]int64   `json:"committed"`
	GroupState  string             `json:"group_state"`
	Members     int                `json:"group_members"`
	Protocol    string             `json:"group_protocol_type"`
	Error       string             `json:"error,omitempty"`
}

type rec struct {
	partition int32
	key       string
	value     string
	headers   map[string]string
	ts        time.Time
}

func want(i int) rec {
	return rec{
		partition: int32(i % partitions),
		key:       fmt.Sprintf("k-%d", i),
		value:     fmt.Sprintf("value-%d", i),
		headers:   map[string]string{"seq": strconv.Itoa(i), "lib": "go"},
		ts:        base.Add(time.Duration(i) * time.Millisecond),
	}
}

// index of a consumed record in the produced sequence if all its fields match, else -1
func check(got rec) int {
	var i int
	if _, err := fmt.Sscanf(got.key, "k-%d", &i); err != nil {
		return -1
	}
	w := want(i)
	if got.partition != w.partition || got.value != w.value || !got.ts.Equal(w.ts) ||
		len(got.headers) != len(w.headers) {
		return -1
	}
	for k, v := range w.headers {
		if got.headers[k] != v {
			return -1
		}
	}
	return i
}

func main() {
	lib := flag.String("lib", "franz", "sarama or franz")
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap address")
	topic := flag.String("topic", "", "topic to create")
	group := flag.String("group", "", "consumer group")
	n := flag.Int("n", 30, "records")
	flag.Parse()
	res := &result{Lib: *lib, Produced: map[string][]int64{}, Committed: map[string]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var err error
	switch *lib {
	case "sarama":
		err = runSarama(ctx, res, *brokers, *topic, *group, *n)
	case "franz":
		err = runFranz(ctx, res, *brokers, *topic, *group, *n)
	default:
		err = fmt.Errorf("unknown lib %q", *lib)
	}
	if err != nil {
		res.Error = err.Error()
	}
	sort.Slice(res.Assigned, func(i, j int) bool { return res.Assigned[i] < res.Assigned[j] })
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if err != nil {
		os.Exit(1)
	}
}

// ---- sarama -------------------------------------------------------------------------------

func kerrName(err error) string {
	if err == nil {
		return "ok"
	}
	var te *sarama.TopicError
	if errors.As(err, &te) {
		return kerrShort(int16(te.Err))
	}
	var ke sarama.KError
	if errors.As(err, &ke) {
		return kerrShort(int16(ke))
	}
	return err.Error()
}

// kerrShort: Kafka's error name for a code (e.g. TOPIC_ALREADY_EXISTS)
func kerrShort(code int16) string {
	if code == 0 {
		return "ok"
	}
	var e *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &e) {
		return e.Message
	}
	return strconv.Itoa(int(code))
}

type saramaHandler struct {
	mu       sync.Mutex // ConsumeClaim runs once per partition, concurrently
	n        int
	seen     map[int]bool
	res      *result
	done     chan struct{}
	assigned map[int32]bool
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range s.Claims() {
		for _, q := range p {
			h.assigned[q] = true
		}
	}
	return nil
}
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		got := rec{partition: m.Partition, key: string(m.Key), value: string(m.Value),
			headers: map[string]string{}, ts: m.Timestamp}
		for _, hd := range m.Headers {
			got.headers[string(hd.Key)] = string(hd.Value)
		}
		h.mu.Lock()
		h.res.Consumed++
		if i := check(got); i >= 0 && !h.seen[i] {
			h.seen[i] = true
			h.res.Intact++
		}
		s.MarkMessage(m, "")
		if len(h.seen) == h.n {
			s.Commit()
			select {
			case <-h.done:
			default:
				close(h.done)
			}
		}
		h.mu.Unlock()
	}
	return nil
}

func runSarama(ctx context.Context, res *result, brokers, topic, group string, n int) error {
	cfg := sarama.NewConfig()
	cfg.ClientID = "pyggy-interop-sarama"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	addrs := []string{brokers}

	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer admin.Close()
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	res.Create = kerrName(admin.CreateTopic(topic, detail, false))
	res.CreateAgain = kerrName(admin.CreateTopic(topic, detail, false))

	producer, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	for i := range n {
		w := want(i)
		msg := &sarama.ProducerMessage{Topic: topic, Partition: w.partition,
			Key: sarama.StringEncoder(w.key), Value: sarama.StringEncoder(w.value), Timestamp: w.ts}
		for _, k := range []string{"seq", "lib"} {
			msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(w.headers[k])})
		}
		p, off, err := producer.SendMessage(msg)
		if err != nil {
			producer.Close()
			return fmt.Errorf("produce %d: %w", i, err)
		}
		key := strconv.Itoa(int(p))
		res.Produced[key] = append(res.Produced[key], off)
	}
	producer.Close()

	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	h := &saramaHandler{n: n, seen: map[int]bool{}, res: res, done: make(chan struct{}),
		assigned: map[int32]bool{}}
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		for cctx.Err() == nil {
			if err := cg.Consume(cctx, []string{topic}, h); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	ccancel()
	cerr := <-errc
	cg.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.assigned {
		res.Assigned = append(res.Assigned, p)
	}
	if len(h.seen) != n {
		return fmt.Errorf("consumed %d of %d records (%v)", len(h.seen), n, cerr)
	}

	offs, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		return fmt.Errorf("group offsets: %w", err)
	}
	for p, b := range offs.Blocks[topic] {
		res.Committed[strconv.Itoa(int(p))] = b.Offset
	}
	desc, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(desc) != 1 {
		return fmt.Errorf("describe group: %v", err)
	}
	res.GroupState, res.Members, res.Protocol = desc[0].State, len(desc[0].Members), desc[0].ProtocolType
	return nil
}

// ---- franz-go -----------------------------------------------------------------------------

func runFranz(ctx context.Context, res *result, brokers, topic, group string, n int) error {
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer adm.Close()
	create := func() string {
		req := kmsg.NewPtrCreateTopicsRequest()
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = topic, partitions, 1
		req.Topics = append(req.Topics, t)
		req.TimeoutMillis = 30000
		resp, err := req.RequestWith(ctx, adm)
		if err != nil {
			return err.Error()
		}
		return kerrShort(resp.Topics[0].ErrorCode)
	}
	res.Create = create()
	res.CreateAgain = create()

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ClientID("pyggy-interop-franz"))
	if err != nil {
		return err
	}
	for i := range n {
		w := want(i)
		r := &kgo.Record{Topic: topic, Partition: w.partition, Key: []byte(w.key),
			Value: []byte(w.value), Timestamp: w.ts}
		for _, k := range []string{"seq", "lib"} {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(w.headers[k])})
		}
		out, err := prod.ProduceSync(ctx, r).First()
		if err != nil {
			prod.Close()
			return fmt.Errorf("produce %d: %w", i, err)
		}
		key := strconv.Itoa(int(out.Partition))
		res.Produced[key] = append(res.Produced[key], out.Offset)
	}
	prod.Close()

	assigned := map[int32]bool{}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.ClientID("pyggy-interop-franz"),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			for _, p := range m[topic] {
				assigned[p] = true
			}
		}))
	if err != nil {
		return err
	}
	seen := map[int]bool{}
	for len(seen) < n && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 && ctx.Err() == nil {
			cons.Close()
			return fmt.Errorf("fetch: %v", errs)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got := rec{partition: r.Partition, key: string(r.Key), value: string(r.Value),
				headers: map[string]string{}, ts: r.Timestamp}
			for _, h := range r.Headers {
				got.headers[h.Key] = string(h.Value)
			}
			res.Consumed++
			if i := check(got); i >= 0 && !seen[i] {
				seen[i] = true
				res.Intact++
			}
		})
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		cons.Close()
		return fmt.Errorf("commit: %w", err)
	}
	cons.Close() // leaves the group
	for p := range assigned {
		res.Assigned = append(res.Assigned, p)
	}
	if len(seen) != n {
		return fmt.Errorf("consumed %d of %d records", len(seen), n)
	}

	ofr := kmsg.NewPtrOffsetFetchRequest()
	ofr.Group = group
	ot := kmsg.NewOffsetFetchRequestTopic()
	ot.Topic, ot.Partitions = topic, []int32{0, 1, 2}
	ofr.Topics = append(ofr.Topics, ot)
	oresp, err := ofr.RequestWith(ctx, adm)
	if err != nil {
		return fmt.Errorf("offset fetch: %w", err)
	}
	if err := kerr.ErrorForCode(oresp.ErrorCode); err != nil {
		return fmt.Errorf("offset fetch: %w", err)
	}
	for _, t := range oresp.Topics {
		for _, p := range t.Partitions {
			res.Committed[strconv.Itoa(int(p.Partition))] = p.Offset
		}
	}
	dreq := kmsg.NewPtrDescribeGroupsRequest()
	dreq.Groups = []string{group}
	dresp, err := dreq.RequestWith(ctx, adm)
	if err != nil || len(dresp.Groups) != 1 {
		return fmt.Errorf("describe group: %v", err)
	}
	g := dresp.Groups[0]
	res.GroupState, res.Members, res.Protocol = g.State, len(g.Members), g.ProtocolType
	return nil
}
