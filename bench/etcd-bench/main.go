// etcd-bench: the etcd counterpart of cairn-bench, for comparing the two
// under the same loads. N concurrent clients (goroutines, each a closed
// loop: one request in flight) spread over M clientv3 clients (one gRPC
// connection each, requests multiplexed as HTTP/2 streams); client i talks
// to endpoint i mod count only, so that the load reaches every node, as
// cairn-bench's connection i goes to endpoint i mod count. One operation
// runs for a fixed time; it prints QPS and p50/p99/p99.9/max latency.
//
//	etcd-bench [--endpoints HOST:PORT[,HOST:PORT...]] [--clients N]
//	           [--connections M] [--seconds S]
//	           [--op put|get|get-serializable|range|mix] [--keys K]
//	           [--value-size B] [--range-size R] [--no-load]
//	           [--load-only N] [--prefix P]
//
// put:              Put of a random one of the K keys, B-byte value
// get:              linearizable Get of a random key
// get-serializable: Get with WithSerializable (served by the local member)
// range:            Get WithPrefix of a random path PREFIX/appNNNN/,
// which holds R keys (R results)
// mix:              per request, drawn with the client's own generator:
// 90% get (linearizable, as get), 10% put (as put), of a random key
// (row "mix", as cairn-bench's --op mix)
//
// Keys mirror cairn-bench's parameters: key i is PREFIX/appNNNN/keyD with
// NNNN = i / R and D = i % R, R being --range-size (default 10, as
// cairn-bench's by-path, whose paths hold 10 parameters). A layout with
// another R needs its own prefix (e.g. --prefix /bench100 --range-size 100).
//
// First it creates the K keys (B-byte values) with max(N, 64) writes in
// flight over the M clients, unless --no-load. --load-only N creates N keys
// that way, reports the rate on stderr and exits: load once, then run with
// --keys N --no-load.
//
// Output on stdout, whitespace-separated, latencies in ms, the same as
// cairn-bench's: a header, then one row
//
//	op clients conns QPS p50 p99 p99.9 max errors
//
// and, after errors, a line "first error: ...".
//
// Build (offline, with Debian's golang-etcd-server-dev):
//
//	GOPATH=$dir:/usr/share/gocode GO111MODULE=off GOCACHE=$dir/cache \
//	    GOPROXY=off go build -o etcd-bench ./bench/etcd-bench
//
// bench/compare builds it that way and runs it against a 3-node etcd.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc/grpclog"
)

const (
	loadInflight   = 64 // least number of writes in flight when loading
	requestTimeout = 30 * time.Second
)

type config struct {
	endpoints   []string
	clients     int
	connections int
	seconds     float64
	op          string
	keys        int
	valueSize   int
	rangeSize   int
	prefix      string
	value       string
}

type result struct {
	lat        []float64 // ms, sorted
	errors     uint64
	elapsed    float64 // s
	firstError string
}

func keyName(cfg *config, i int) string {
	return fmt.Sprintf("%s/app%04d/key%d", cfg.prefix, i/cfg.rangeSize,
		i%cfg.rangeSize)
}

// pathName is the prefix holding keys i/R*R .. i/R*R+R-1; the trailing
// slash keeps app0001 from matching app00010 and so on.
func pathName(cfg *config, i int) string {
	return fmt.Sprintf("%s/app%04d/", cfg.prefix, i/cfg.rangeSize)
}

func dial(ep string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:          []string{ep},
		DialTimeout:        5 * time.Second,
		MaxCallSendMsgSize: 16 << 20,
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd-bench: connecting to %s: %v\n", ep, err)
		os.Exit(1)
	}
	return c
}

func pct(v []float64, p float64) float64 {
	n := len(v)
	if n == 0 {
		return 0
	}
	i := int(p/100.0*float64(n-1) + 0.5)
	if i >= n {
		i = n - 1
	}
	return v[i]
}

// drive runs op with `clients` closed-loop clients over min(connections,
// clients) clientv3 clients for the configured time (a load: until its keys
// are written). Requests answered after the end still count, as
// cairn-bench's do; elapsed runs until the last one is answered.
func drive(cfg *config, op string, clients int) *result {
	m := cfg.connections
	if m > clients {
		m = clients
	}
	conns := make([]*clientv3.Client, m)
	for i := range conns {
		conns[i] = dial(cfg.endpoints[i%len(cfg.endpoints)])
	}
	var (
		nextKey  int64
		errCount uint64
		mu       sync.Mutex
		firstErr string
		wg       sync.WaitGroup
	)
	lats := make([][]float64, clients)
	t0 := time.Now()
	end := t0.Add(time.Duration(cfg.seconds * float64(time.Second)))
	// Client c uses clientv3 client c mod m: each of the m gets
	// clients/m, the first clients%m one more, as in cairn-bench.
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cli := conns[c%m]
			rng := rand.New(rand.NewSource(int64(1234 + c)))
			lat := make([]float64, 0, 65536)
			for {
				var i int
				if op == "load" {
					i = int(atomic.AddInt64(&nextKey, 1) - 1)
					if i >= cfg.keys {
						break
					}
				} else {
					if !time.Now().Before(end) {
						break
					}
					i = rng.Intn(cfg.keys)
				}
				o := op
				if o == "mix" {
					// 1 in 10 a put, the rest a linearizable get.
					if rng.Intn(10) == 0 {
						o = "put"
					} else {
						o = "get"
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(),
					requestTimeout)
				st := time.Now()
				var err error
				switch o {
				case "load", "put":
					_, err = cli.Put(ctx, keyName(cfg, i), cfg.value)
				case "get":
					var r *clientv3.GetResponse
					r, err = cli.Get(ctx, keyName(cfg, i))
					if err == nil && len(r.Kvs) != 1 {
						err = fmt.Errorf("get %s: %d keys", keyName(cfg, i),
							len(r.Kvs))
					}
				case "get-serializable":
					var r *clientv3.GetResponse
					r, err = cli.Get(ctx, keyName(cfg, i),
						clientv3.WithSerializable())
					if err == nil && len(r.Kvs) != 1 {
						err = fmt.Errorf("get %s: %d keys", keyName(cfg, i),
							len(r.Kvs))
					}
				case "range":
					var r *clientv3.GetResponse
					r, err = cli.Get(ctx, pathName(cfg, i),
						clientv3.WithPrefix())
					// The path holds R keys, the last one fewer if K is
					// not a multiple of R.
					want := cfg.keys - i/cfg.rangeSize*cfg.rangeSize
					if want > cfg.rangeSize {
						want = cfg.rangeSize
					}
					if err == nil && len(r.Kvs) != want {
						err = fmt.Errorf("range %s: %d keys, not %d",
							pathName(cfg, i), len(r.Kvs), want)
					}
				}
				ms := float64(time.Since(st).Nanoseconds()) / 1e6
				cancel()
				lat = append(lat, ms)
				if err != nil {
					atomic.AddUint64(&errCount, 1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
				}
			}
			lats[c] = lat
		}(c)
	}
	wg.Wait()
	res := &result{elapsed: time.Since(t0).Seconds(), errors: errCount,
		firstError: firstErr}
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	sort.Float64s(res.lat)
	for _, c := range conns {
		c.Close()
	}
	return res
}

func bench(cfg *config) {
	res := drive(cfg, cfg.op, cfg.clients)
	n := len(res.lat)
	max := 0.0
	if n > 0 {
		max = res.lat[n-1]
	}
	fmt.Printf("%-8s %7d %5d %10.0f %9.3f %9.3f %9.3f %9.3f %8d\n", cfg.op,
		cfg.clients, cfg.connections, float64(n)/res.elapsed,
		pct(res.lat, 50), pct(res.lat, 99), pct(res.lat, 99.9), max,
		res.errors)
	if res.errors > 0 {
		fmt.Printf("         first error: %s\n", res.firstError)
	}
}

func load(cfg *config) {
	inflight := cfg.clients
	if inflight < loadInflight {
		inflight = loadInflight
	}
	fmt.Fprintf(os.Stderr, "loading %d keys of %d bytes under %s (%d per path)...\n",
		cfg.keys, cfg.valueSize, cfg.prefix, cfg.rangeSize)
	res := drive(cfg, "load", inflight)
	if res.errors > 0 {
		fmt.Fprintf(os.Stderr, "etcd-bench: load failed (%d errors): %s\n",
			res.errors, res.firstError)
		os.Exit(1)
	}
	m := cfg.connections
	if m > inflight {
		m = inflight
	}
	n := len(res.lat)
	max := 0.0
	if n > 0 {
		max = res.lat[n-1]
	}
	fmt.Fprintf(os.Stderr, "loaded %d keys in %.2f s: %.0f puts/s, %d in flight "+
		"over %d connections, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		cfg.keys, res.elapsed, float64(n)/res.elapsed, inflight, m,
		pct(res.lat, 50), pct(res.lat, 99), max)
}

func main() {
	cfg := &config{}
	eps := flag.String("endpoints", "127.0.0.1:2379",
		"comma-separated HOST:PORT list; client i uses endpoint i mod count")
	flag.IntVar(&cfg.clients, "clients", 16, "requests in flight in all")
	flag.IntVar(&cfg.connections, "connections", 4,
		"clientv3 clients (gRPC connections) the clients share")
	flag.Float64Var(&cfg.seconds, "seconds", 5, "time per operation")
	flag.StringVar(&cfg.op, "op", "get",
		"put, get, get-serializable, range or mix (90% get, 10% put)")
	flag.IntVar(&cfg.keys, "keys", 10000, "keys the operation uses")
	flag.IntVar(&cfg.valueSize, "value-size", 1024, "bytes per value")
	flag.IntVar(&cfg.rangeSize, "range-size", 10,
		"keys per path PREFIX/appNNNN/ (results of range)")
	noLoad := flag.Bool("no-load", false, "do not create the K keys first")
	loadOnly := flag.Int("load-only", 0, "create N keys, report, exit")
	flag.StringVar(&cfg.prefix, "prefix", "/bench",
		"keys are PREFIX/appNNNN/keyD")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	// clientv3 and gRPC log to stderr by default; keep it quiet.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(ioutil.Discard, ioutil.Discard,
		os.Stderr))
	log.SetOutput(os.Stderr)

	for _, e := range strings.Split(*eps, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.endpoints = append(cfg.endpoints, e)
		}
	}
	if *loadOnly > 0 {
		cfg.keys = *loadOnly
	}
	switch cfg.op {
	case "put", "get", "get-serializable", "range", "mix":
	default:
		fmt.Fprintf(os.Stderr, "etcd-bench: bad --op %s\n", cfg.op)
		os.Exit(2)
	}
	if len(cfg.endpoints) == 0 || cfg.clients < 1 || cfg.connections < 1 ||
		cfg.keys < cfg.rangeSize || cfg.rangeSize < 1 ||
		cfg.valueSize < 1 || cfg.seconds <= 0 {
		fmt.Fprintln(os.Stderr, "etcd-bench: endpoints, clients, connections,"+
			" range size, value size >= 1, keys >= range size, seconds > 0")
		os.Exit(2)
	}
	cfg.value = strings.Repeat("v", cfg.valueSize)
	if cfg.connections > cfg.clients {
		cfg.connections = cfg.clients
	}
	if *loadOnly > 0 {
		load(cfg)
		return
	}
	if !*noLoad {
		load(cfg)
	}
	fmt.Printf("%-8s %7s %5s %10s %9s %9s %9s %9s %8s\n", "op", "clients",
		"conns", "QPS", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors")
	bench(cfg)
}
