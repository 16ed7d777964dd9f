// Command clientgo-bench is the client-go row of faro's informer benchmarks: a client-go
// SharedInformer (informers.NewSharedInformerFactoryWithOptions, v1 ConfigMaps in one
// namespace) driven exactly as benchmarks/clients.py drives the Python variants, printing
// the same one JSON line.
//
// Usage: clientgo-bench MODE --kubeconfig PATH --count N [--namespace bench]
// [--budget SECONDS] [--timeout SECONDS] [--force-gc] [--strip-managed-fields]
// [--client list-watch|defaults|json] [--label-selector SELECTOR]
//
// MODE is
//
//   - throughput: the informer lists the (empty) namespace and watches from the listed
//     resourceVersion; an AddFunc handler counts the events of the burst the harness makes
//     while the simulator holds that watch. Prints {"events": N, "seconds": S, "capped": B,
//     "first_wall": T, "last_wall": T}, S from the first handler call to the last. Counting
//     stops at --count events, or at the first check (every 1,024 events) more than --budget
//     seconds after the first event.
//   - sync: the namespace holds --count objects; RSS (VmRSS) after the client and informer
//     are built, the time from starting the informer to the handler's --count-th call (the
//     initial list is in the store before its adds are handed to handlers, so that call
//     marks a full cache and every handler call done), and RSS again. Prints
//     {"sync_seconds": S, "rss_before": B, "rss_after": B, "objects": N}.
//   - latency (bench_real.py, against a real API server): the informer (usually with a
//     --label-selector that matches nothing yet) syncs, then the program prints
//     {"synced": true} on a line of its own; for each of the --count objects the harness
//     then creates, the AddFunc handler records time.Now() (wall clock) minus the write time
//     the object carries (annotation faro.bench/written, Unix seconds). Prints
//     {"events": N, "latencies_ms": [...], "names": [...]} (names in arrival order).
//
// Every mode's JSON line also carries "requests", the requests the client sent (method,
// path and query, and the response's status and Content-Type), at most the first 20.
//
// Go's garbage collector is not forced before either RSS reading (the Python clients run
// gc.collect(), which frees only reference cycles); --force-gc runs runtime.GC and
// debug.FreeOSMemory before both, for ad hoc comparisons. --strip-managed-fields installs a
// transform that drops metadata.managedFields, as faro's store does (ad hoc too).
//
// The client, --client list-watch (the default, the simulator runs): the kubeconfig's server
// and bearer token (sent over plain HTTP, as the Python clients do), JSON (the simulator
// speaks JSON), no client-side rate limit (QPS -1), and no streaming list (the
// WatchListClient feature, on by default since client-go 1.35, needs sendInitialEvents,
// which the simulator does not implement): a LIST (limit 500, from resourceVersion 0; the
// simulator pages it, a real server's watch cache answers it whole), then a WATCH.
// --client defaults leaves the rest.Config as clientcmd builds it from the kubeconfig
// (server, TLS, client certificate or token) and client-go's own defaults for everything
// else: the content type (unset, so the typed clients of built-in resources ask for
// protobuf, JSON accepted too: they are generated with --prefers-protobuf), the rate limiter
// (QPS 5, burst 10) and the WatchListClient feature gate (a streaming list,
// sendInitialEvents, where the server supports it). --client json is defaults with
// ContentType and AcceptContentTypes application/json.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// checkEvery is a mask: the handler looks at the clock every 1,024 events.
const checkEvery = 1023

// counter counts handler calls until expected (or the time budget), then closes done.
// Only the informer's handler goroutine calls hit; done orders its fields for readers.
type counter struct {
	expected  int64
	budget    time.Duration
	count     atomic.Int64
	events    int64
	first     time.Time
	last      time.Time
	firstWall time.Time
	lastWall  time.Time
	capped    bool
	finished  bool
	done      chan struct{}
}

func newCounter(expected int64, budget time.Duration) *counter {
	return &counter{expected: expected, budget: budget, done: make(chan struct{})}
}

func (c *counter) hit(any) {
	if c.finished {
		return
	}
	count := c.count.Add(1)
	if count == 1 {
		c.first = time.Now()
		c.firstWall = c.first
	}
	if count >= c.expected {
		c.finish(time.Now(), false)
	} else if count&checkEvery == 0 {
		if now := time.Now(); now.Sub(c.first) > c.budget {
			c.finish(now, true)
		}
	}
}

func (c *counter) finish(now time.Time, capped bool) {
	c.last = now
	c.lastWall = now
	c.events = c.count.Load()
	c.capped = capped
	c.finished = true
	close(c.done)
}

// wait returns once counting stopped, or exits the process after timeout.
func (c *counter) wait(timeout time.Duration) {
	select {
	case <-c.done:
	case <-time.After(timeout):
		fail("%d of %d events within %.0f s", c.count.Load(), c.expected, timeout.Seconds())
	}
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// noWatchList is the clientset, telling the reflector it cannot stream lists.
type noWatchList struct {
	kubernetes.Interface
}

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// writtenAnnotation is the write time (Unix seconds) bench_real.py's writer puts on each
// object of the latency mode.
const writtenAnnotation = "faro.bench/written"

// latencies records, per handler call, the wall clock minus the object's write time.
// Only the informer's handler goroutine calls record; done orders the slices for readers.
type latencies struct {
	expected int
	millis   []float64
	names    []string
	done     chan struct{}
}

func (l *latencies) record(obj any) {
	now := time.Now()
	if len(l.millis) >= l.expected {
		return
	}
	configMap, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	written, err := strconv.ParseFloat(configMap.Annotations[writtenAnnotation], 64)
	if err != nil {
		fail("object %s: annotation %s: %v", configMap.Name, writtenAnnotation, err)
	}
	l.millis = append(l.millis, (unixSeconds(now)-written)*1000)
	l.names = append(l.names, configMap.Name)
	if len(l.millis) == l.expected {
		close(l.done)
	}
}

// requestLog keeps the first requests a client sends (for the JSON line).
type requestLog struct {
	mu      sync.Mutex
	entries []string
	total   int
}

const requestLogMax = 20

func (r *requestLog) add(entry string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.entries) < requestLogMax {
		r.entries = append(r.entries, entry)
	}
}

func (r *requestLog) snapshot() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return map[string]any{"total": r.total, "first": append([]string(nil), r.entries...)}
}

type loggingTransport struct {
	next http.RoundTripper
	log  *requestLog
}

func (t loggingTransport) RoundTrip(request *http.Request) (*http.Response, error) {
	response, err := t.next.RoundTrip(request)
	entry := request.Method + " " + request.URL.RequestURI()
	if err != nil {
		entry += " -> error"
	} else {
		entry += fmt.Sprintf(" -> %d %s", response.StatusCode, response.Header.Get("Content-Type"))
	}
	t.log.add(entry)
	return response, err
}

func newInformer(kubeconfig, namespace, client, labelSelector string, strip bool,
	log *requestLog) cache.SharedIndexInformer {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fail("kubeconfig: %v", err)
	}
	// clientcmd reads credentials only for https servers; the simulator is plain HTTP
	// (127.0.0.1) and wants the kubeconfig's bearer token, which the Python clients send.
	if config.BearerToken == "" {
		raw, err := clientcmd.LoadFromFile(kubeconfig)
		if err != nil {
			fail("kubeconfig: %v", err)
		}
		if current, ok := raw.Contexts[raw.CurrentContext]; ok {
			if user, ok := raw.AuthInfos[current.AuthInfo]; ok {
				config.BearerToken = user.Token
			}
		}
	}
	config.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return loggingTransport{next: next, log: log}
	})
	watchList := false
	switch client {
	case "list-watch":
		config.QPS = -1
		config.Burst = math.MaxInt32
		config.ContentType = k8sruntime.ContentTypeJSON
		config.AcceptContentTypes = k8sruntime.ContentTypeJSON
	case "defaults":
		watchList = true
	case "json":
		config.ContentType = k8sruntime.ContentTypeJSON
		config.AcceptContentTypes = k8sruntime.ContentTypeJSON
		watchList = true
	default:
		fail("--client: %q is not list-watch, defaults or json", client)
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		fail("clientset: %v", err)
	}
	options := []informers.SharedInformerOption{informers.WithNamespace(namespace)}
	if labelSelector != "" {
		options = append(options, informers.WithTweakListOptions(func(list *metav1.ListOptions) {
			list.LabelSelector = labelSelector
		}))
	}
	if strip {
		options = append(options, informers.WithTransform(stripManagedFields))
	}
	var api kubernetes.Interface = noWatchList{clientset}
	if watchList {
		api = clientset // the reflector follows the WatchListClient feature gate
	}
	factory := informers.NewSharedInformerFactoryWithOptions(api, 0, options...)
	return factory.Core().V1().ConfigMaps().Informer()
}

func stripManagedFields(obj any) (any, error) {
	if accessor, ok := obj.(metav1.ObjectMetaAccessor); ok {
		accessor.GetObjectMeta().SetManagedFields(nil)
	}
	return obj, nil
}

// rss is this process's resident set size in bytes (VmRSS).
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail("rss: %v", err)
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		fields := bytes.Fields(scanner.Bytes())
		if len(fields) >= 2 && string(fields[0]) == "VmRSS:" {
			kib, err := strconv.ParseInt(string(fields[1]), 10, 64)
			if err != nil {
				fail("rss: %v", err)
			}
			return kib * 1024
		}
	}
	fail("no VmRSS in /proc/self/status")
	return 0
}

func collect(force bool) {
	if force {
		runtime.GC()
		debug.FreeOSMemory()
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "clientgo-bench: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	modes := map[string]bool{"throughput": true, "sync": true, "latency": true}
	if len(os.Args) < 2 || !modes[os.Args[1]] {
		fail("usage: clientgo-bench throughput|sync|latency --kubeconfig PATH --count N [flags]")
	}
	mode := os.Args[1]
	flags := flag.NewFlagSet("clientgo-bench "+mode, flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of the API server")
	count := flags.Int64("count", 0, "events (throughput, latency) or objects (sync) to wait for")
	namespace := flags.String("namespace", "bench", "namespace to watch")
	budget := flags.Float64("budget", math.Inf(1), "throughput: stop counting this many seconds after the first event")
	timeout := flags.Float64("timeout", 300, "give up after this many seconds")
	forceGC := flags.Bool("force-gc", false, "sync: runtime.GC and debug.FreeOSMemory before each RSS reading")
	strip := flags.Bool("strip-managed-fields", false, "drop metadata.managedFields in a transform")
	client := flags.String("client", "list-watch", "client configuration: list-watch (JSON, LIST then WATCH, no rate limit), defaults (client-go's: protobuf, streaming list) or json (defaults with JSON)")
	labelSelector := flags.String("label-selector", "", "the informer's label selector")
	_ = flags.Parse(os.Args[2:])
	if *kubeconfig == "" || *count <= 0 {
		fail("--kubeconfig and a positive --count are required")
	}
	wait := time.Duration(*timeout * float64(time.Second))

	log := &requestLog{}
	informer := newInformer(*kubeconfig, *namespace, *client, *labelSelector, *strip, log)
	ctx := context.Background()
	var result map[string]any
	switch mode {
	case "latency":
		result = runLatency(ctx, informer, int(*count), wait)
	case "throughput":
		c := newCounter(*count, time.Duration(*budget*float64(time.Second)))
		addHandler(informer, c.hit)
		go informer.RunWithContext(ctx)
		c.wait(wait)
		result = map[string]any{
			"events": c.events, "seconds": c.last.Sub(c.first).Seconds(), "capped": c.capped,
			"first_wall": unixSeconds(c.firstWall), "last_wall": unixSeconds(c.lastWall),
		}
	default:
		c := newCounter(*count, time.Duration(math.MaxInt64))
		addHandler(informer, c.hit)
		collect(*forceGC)
		before := rss()
		started := time.Now()
		go informer.RunWithContext(ctx)
		c.wait(wait)
		seconds := c.last.Sub(started).Seconds()
		collect(*forceGC)
		after := rss()
		objects := 0
		for _, obj := range informer.GetStore().List() {
			if _, ok := obj.(*corev1.ConfigMap); ok {
				objects++
			}
		}
		result = map[string]any{
			"sync_seconds": seconds, "rss_before": before, "rss_after": after,
			"objects": objects, "force_gc": *forceGC,
		}
	}
	result["client"] = *client
	result["requests"] = log.snapshot()
	printJSON(result)
	// The informer's goroutines may sit in a blocking read: leave without stopping them.
	os.Exit(0)
}

func addHandler(informer cache.SharedIndexInformer, add func(any)) {
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: add}); err != nil {
		fail("add handler: %v", err)
	}
}

// runLatency syncs the informer, says so, and records the latency of --count adds.
func runLatency(ctx context.Context, informer cache.SharedIndexInformer, count int,
	wait time.Duration) map[string]any {
	l := &latencies{expected: count, done: make(chan struct{})}
	addHandler(informer, l.record)
	go informer.RunWithContext(ctx)
	syncCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		fail("not synced within %.0f s", wait.Seconds())
	}
	printJSON(map[string]any{"synced": true})
	select {
	case <-l.done:
	case <-time.After(wait):
		fail("%d of %d events within %.0f s", len(l.millis), count, wait.Seconds())
	}
	return map[string]any{"events": len(l.millis), "latencies_ms": l.millis, "names": l.names}
}

func printJSON(value map[string]any) {
	line, err := json.Marshal(value)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(line))
}
