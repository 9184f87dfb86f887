package datastore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore/resource"
	"ocelot/internal/embedetcd"
)

// TestMain lets the test binary double as an etcd server in a child
// process, so that benchmarks measure the agent's memory, not etcd's.
func TestMain(m *testing.M) {
	if dir := os.Getenv("OCELOT_TEST_ETCD_DIR"); dir != "" {
		srv, err := embedetcd.Start(dir, embedetcd.Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(srv.ClientURL)
		bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		srv.Stop()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startEtcdProcess(b *testing.B) string {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "OCELOT_TEST_ETCD_DIR="+b.TempDir())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || len(line) < 8 || line[:4] != "http" {
		b.Fatalf("etcd child: %q %v", line, err)
	}
	return line[:len(line)-1]
}

// populate writes n endpoints across three regions (local of them on host
// "bench-local") and p SG policies in the local region, as Neutron would.
func populate(b *testing.B, cli *clientv3.Client, n, local, p int) {
	var wg sync.WaitGroup
	work := make(chan []clientv3.Op)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	var ops []clientv3.Op
	flush := func() {
		if len(ops) > 0 {
			work <- ops
			ops = nil
		}
	}
	add := func(k, v string) {
		ops = append(ops, clientv3.OpPut(k, v))
		if len(ops) == 100 {
			flush()
		}
	}
	add(clusterInfoKey(), readyJSON)
	regions := []string{nsOne, nsTwo, nsThree}
	for i := 0; i < n; i++ {
		ns, host := regions[i%3], fmt.Sprintf("compute-%d", i/40)
		if i < local {
			ns, host = nsOne, "bench-local"
		}
		vm, port := fmt.Sprintf("vm-%08d", i), fmt.Sprintf("%08x-0000-4000-8000-%012d", i, i)
		add(wepKey(ns, host, vm, port), wepJSON(ns, host, vm, port, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), strconv.Itoa(i%5000)))
	}
	for i := 0; i < p; i++ {
		add(policyKey(nsOne, fmt.Sprintf("ossg.default.%08d", i)), sgPolicyJSON(nsOne, strconv.Itoa(i)))
	}
	flush()
	close(work)
	wg.Wait()
}

// heapSampler records the peak of live heap objects while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

func sampleHeap() *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan uint64)}
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-s.stop:
				s.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) peak() uint64 { close(s.stop); return <-s.done }

func heapNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkInitialList lists 100,000 endpoints (200 local) and 10,000
// policies from an etcd in another process, to InSync.
func BenchmarkInitialList(b *testing.B) {
	url := startEtcdProcess(b)
	cli := connect(b, url)
	populate(b, cli, 100_000, 200, 10_000)
	b.ResetTimer()
	for b.Loop() {
		base := heapNow()
		hs := sampleHeap()
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan Batch, 16)
		go NewSyncer(cli, SyncerConfig{Hostname: "bench-local", Namespace: nsOne}).Run(ctx, out)
		var held []resource.Update // what calc would keep
		for bt := range out {
			held = append(held, bt.Updates...)
			if bt.InSync {
				break
			}
		}
		elapsed := time.Since(start)
		peak := hs.peak()
		cancel()
		retained := heapNow() - base
		b.ReportMetric(elapsed.Seconds(), "s-to-insync")
		b.ReportMetric(float64(peak-base)/(1<<20), "peak-MiB")
		b.ReportMetric(float64(retained)/(1<<20), "retained-MiB")
		b.ReportMetric(float64(len(held)), "updates")
		runtime.KeepAlive(held)
	}
}

// BenchmarkWatchThroughput measures updates per second from etcd writes to
// the syncer's output while it is in sync.
func BenchmarkWatchThroughput(b *testing.B) {
	url := startEtcdProcess(b)
	cli := connect(b, url)
	populate(b, cli, 1000, 10, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Batch, 64)
	go NewSyncer(cli, SyncerConfig{Hostname: "bench-local", Namespace: nsOne}).Run(ctx, out)
	for bt := range out {
		if bt.InSync {
			break
		}
	}
	const n = 20_000
	values := make([]clientv3.Op, n)
	for i := range values {
		vm, port := fmt.Sprintf("w-%08d", i%1000), fmt.Sprintf("%08x-1111-4000-8000-%012d", i%1000, i%1000)
		values[i] = clientv3.OpPut(wepKey(nsTwo, "remote", vm, port),
			wepJSON(nsTwo, "remote", vm, port, fmt.Sprintf("10.200.%d.%d", i>>8&255, i&255), strconv.Itoa(i%50)))
	}
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		go func() {
			for i := 0; i < n; i += 100 {
				cli.Txn(ctx).Then(values[i : i+100]...).Commit()
			}
		}()
		got := 0
		for got < n {
			got += len((<-out).Updates)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	}
}
