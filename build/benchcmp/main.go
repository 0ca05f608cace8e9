// Command benchcmp measures, in one run, the same BFL requests three ways:
// straight to a BFL server (the simulator), through the FluxForge proxy, and
// through nginx as the reference reverse proxy. It prints latency and
// throughput for a small JSON round trip and for a finetune-sized upload, and
// the ratios proxy/nginx and proxy/direct.
//
// build/bench.sh starts the three servers and runs it; see `make bench`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

// target is one way of reaching the BFL API.
type target struct {
	name   string
	base   string // scheme://host:port and any path prefix before /v1/
	header map[string]string
}

type options struct {
	targets     []target
	extras      []target // proxy candidates, small request only
	clients     []int
	duration    time.Duration
	rounds      int
	uploadMB    float64
	uploadImgs  int
	uploads     int
	bigMB       float64
	proxyPID    int
	reqTimeout  time.Duration
	upTimeout   time.Duration
	smallTarget float64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchcmp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	opt, err := parseFlags(args)
	if err != nil {
		return err
	}
	var small []smallResult
	for _, c := range opt.clients {
		res, err := benchSmall(ctx, opt, c)
		if err != nil {
			return err
		}
		small = append(small, res...)
	}
	printSmall(out, opt, small)

	var ups []uploadBench
	if opt.uploads > 0 {
		valid, transfer, body, spoiled, err := uploadBodies(opt)
		if err != nil {
			return err
		}
		for _, u := range []struct {
			b    uploadBench
			body []byte
		}{{valid, body}, {transfer, spoiled}} {
			res, err := benchUpload(ctx, opt, u.b, u.body)
			if err != nil {
				return err
			}
			printUpload(out, opt, res)
			ups = append(ups, res)
		}
	}

	if opt.bigMB > 0 && opt.proxyPID > 0 {
		big, err := bigUploadRSS(ctx, opt)
		if err != nil {
			return err
		}
		printBig(out, big)
	}
	if !printVerdict(out, opt, small, ups) {
		return errors.New("some requests failed or got the wrong answer: the figures marked INVALID measure nothing")
	}
	return nil
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("benchcmp", flag.ContinueOnError)
	direct := fs.String("direct", "", "base URL of the BFL server itself, e.g. http://127.0.0.1:9000")
	proxy := fs.String("proxy", "", "base URL of the FluxForge proxy, e.g. http://127.0.0.1:8080")
	nginx := fs.String("nginx", "", "base URL of nginx proxying to the BFL server")
	key := fs.String("key", "", "x-key sent on direct requests (the proxies add their own)")
	token := fs.String("token", "", "PROXY_TOKEN of the proxy, if it has one")
	clients := fs.String("clients", "1,16", "comma list of concurrent keep-alive client counts for the small request")
	extra := fs.String("extra", "", "comma list of name=URL: other proxy candidates (same /api paths) to add to the small-request rounds, e.g. to try a fix")
	var opt options
	fs.DurationVar(&opt.duration, "duration", 6*time.Second, "small-request time per target and client count, split over -rounds")
	fs.IntVar(&opt.rounds, "rounds", 3, "rounds per small-request measurement; the target order rotates each round")
	fs.Float64Var(&opt.uploadMB, "upload-mb", 27, "finetune body size in MB (a 20 MB ZIP is a 27 MB body)")
	fs.IntVar(&opt.uploadImgs, "upload-images", 20, "images in the upload's ZIP")
	fs.IntVar(&opt.uploads, "uploads", 11, "timed uploads per target, after one untimed warm-up (0: no upload test)")
	fs.Float64Var(&opt.bigMB, "big-mb", 200, "size of the upload during which the proxy's peak RSS is sampled (0: skip)")
	fs.IntVar(&opt.proxyPID, "proxy-pid", 0, "pid of the proxy, for the RSS figures (0: skip)")
	fs.DurationVar(&opt.reqTimeout, "request-timeout", 10*time.Second, "deadline of one small request")
	fs.DurationVar(&opt.upTimeout, "upload-timeout", 3*time.Minute, "deadline of one upload")
	fs.Float64Var(&opt.smallTarget, "small-target", 1.5, "small-request p50 proxy/nginx ratio the proxy should stay within")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if *direct == "" || *proxy == "" || *nginx == "" {
		return options{}, errors.New("-direct, -proxy and -nginx are all required: the point is one run, three ways")
	}
	proxyHeader := map[string]string{}
	if *token != "" {
		proxyHeader["Authorization"] = "Bearer " + *token
	}
	opt.targets = []target{
		{name: "direct", base: strings.TrimSuffix(*direct, "/"), header: map[string]string{"x-key": *key}},
		{name: "proxy", base: strings.TrimSuffix(*proxy, "/") + "/api", header: proxyHeader},
		{name: "nginx", base: strings.TrimSuffix(*nginx, "/"), header: map[string]string{}},
	}
	for _, e := range strings.Split(*extra, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		name, base, ok := strings.Cut(e, "=")
		if !ok || name == "" || base == "" {
			return options{}, fmt.Errorf("-extra: %q is not name=URL", e)
		}
		opt.extras = append(opt.extras, target{name: name, base: strings.TrimSuffix(base, "/") + "/api", header: proxyHeader})
	}
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return options{}, fmt.Errorf("-clients: %q is not a positive integer", s)
		}
		opt.clients = append(opt.clients, n)
	}
	if opt.rounds < 1 || opt.uploads < 0 || opt.uploadImgs < 1 {
		return options{}, errors.New("-rounds and -upload-images must be at least 1, -uploads not negative")
	}
	if opt.duration < time.Duration(opt.rounds)*100*time.Millisecond {
		return options{}, fmt.Errorf("-duration %v is too short for %d rounds", opt.duration, opt.rounds)
	}
	return opt, nil
}
