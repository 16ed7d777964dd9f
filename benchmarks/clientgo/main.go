// Command clientgo-bench is the client-go row of faro's informer benchmarks: a client-go
// SharedInformer (informers.NewSharedInformerFactoryWithOptions, v1 ConfigMaps in one
// namespace) driven exactly as benchmarks/clients.py drives the Python variants, printing
// the same one JSON line.
//
// Usage: clientgo-bench MODE --kubeconfig PATH --count N [--namespace bench]
// [--budget SECONDS] [--timeout SECONDS] [--force-gc] [--strip-managed-fields]
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
//
// Go's garbage collector is not forced before either RSS reading (the Python clients run
// gc.collect(), which frees only reference cycles); --force-gc runs runtime.GC and
// debug.FreeOSMemory before both, for ad hoc comparisons. --strip-managed-fields installs a
// transform that drops metadata.managedFields, as faro's store does (ad hoc too).
//
// The client: the kubeconfig's server and bearer token (sent over plain HTTP, as the Python
// clients do), JSON (the simulator speaks JSON), no client-side rate limit (QPS -1), and no
// streaming list (the WatchListClient feature, on by default since client-go 1.35, needs
// sendInitialEvents, which the simulator does not implement): a paged LIST, then a WATCH.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
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

func newInformer(kubeconfig, namespace string, strip bool) cache.SharedIndexInformer {
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
	config.QPS = -1
	config.Burst = math.MaxInt32
	config.ContentType = k8sruntime.ContentTypeJSON
	config.AcceptContentTypes = k8sruntime.ContentTypeJSON
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		fail("clientset: %v", err)
	}
	options := []informers.SharedInformerOption{informers.WithNamespace(namespace)}
	if strip {
		options = append(options, informers.WithTransform(stripManagedFields))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(noWatchList{clientset}, 0, options...)
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
	if len(os.Args) < 2 || (os.Args[1] != "throughput" && os.Args[1] != "sync") {
		fail("usage: clientgo-bench throughput|sync --kubeconfig PATH --count N [flags]")
	}
	mode := os.Args[1]
	flags := flag.NewFlagSet("clientgo-bench "+mode, flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of the simulated API server")
	count := flags.Int64("count", 0, "events (throughput) or objects (sync) to wait for")
	namespace := flags.String("namespace", "bench", "namespace to watch")
	budget := flags.Float64("budget", math.Inf(1), "throughput: stop counting this many seconds after the first event")
	timeout := flags.Float64("timeout", 300, "give up after this many seconds")
	forceGC := flags.Bool("force-gc", false, "sync: runtime.GC and debug.FreeOSMemory before each RSS reading")
	strip := flags.Bool("strip-managed-fields", false, "drop metadata.managedFields in a transform")
	_ = flags.Parse(os.Args[2:])
	if *kubeconfig == "" || *count <= 0 {
		fail("--kubeconfig and a positive --count are required")
	}
	wait := time.Duration(*timeout * float64(time.Second))

	informer := newInformer(*kubeconfig, *namespace, *strip)
	var c *counter
	if mode == "throughput" {
		c = newCounter(*count, time.Duration(*budget*float64(time.Second)))
	} else {
		c = newCounter(*count, time.Duration(math.MaxInt64))
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: c.hit}); err != nil {
		fail("add handler: %v", err)
	}
	ctx := context.Background()

	var result map[string]any
	if mode == "throughput" {
		go informer.RunWithContext(ctx)
		c.wait(wait)
		result = map[string]any{
			"events": c.events, "seconds": c.last.Sub(c.first).Seconds(), "capped": c.capped,
			"first_wall": unixSeconds(c.firstWall), "last_wall": unixSeconds(c.lastWall),
		}
	} else {
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
	line, err := json.Marshal(result)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(line))
	// The informer's goroutines may sit in a blocking read: leave without stopping them.
	os.Exit(0)
}
