// Command kubelet is a stand-in for the kubelet's device manager, for tests of
// device plugins. It serves the Registration service on <dir>/kubelet.sock,
// connects back to every plugin that registers, records what the plugin sends
// (as JSON lines on stdout) and calls the plugin's RPCs on command (JSON lines
// on stdin). All gRPC encoding and decoding is done by the generated code of
// k8s.io/kubelet, so a test sees exactly what a real kubelet would decode.
// The protocol is described in ../README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"vmgpu.test/peers/internal/jsonl"
)

const registrationSocket = "kubelet.sock"

var out jsonl.Emitter

// plugin is one registered device plugin endpoint, as the kubelet keeps it.
type plugin struct {
	resourceName string
	endpoint     string
	version      string
	options      *pluginapi.DevicePluginOptions
	conn         *grpc.ClientConn
	client       pluginapi.DevicePluginClient
	ctx          context.Context // cancelled when the kubelet drops the plugin
	cancel       context.CancelFunc
	done         chan struct{} // closed when the ListAndWatch goroutine has returned

	mu          sync.Mutex
	closeReason string // why the kubelet ended the stream, if it did
	devices     []*pluginapi.Device
	streaming   bool
}

func (p *plugin) stop(reason string) {
	p.mu.Lock()
	if p.closeReason == "" {
		p.closeReason = reason
	}
	p.mu.Unlock()
	p.cancel()
	<-p.done
	_ = p.conn.Close()
}

type kubelet struct {
	dir         string
	callTimeout time.Duration

	mu              sync.Mutex
	server          *grpc.Server
	generation      int // counts starts; a Register from an earlier server is refused
	plugins         map[string]*plugin
	rejectRemaining int
	registrations   int
}

func main() {
	dir := flag.String("dir", "", "directory standing for /var/lib/kubelet/device-plugins (required; must exist)")
	rejectFirst := flag.Int("reject-first", 0, "reject the first N Register calls with an error, to test plugin retries")
	callTimeout := flag.Duration("call-timeout", 10*time.Second, "timeout for each RPC the fake kubelet makes to a plugin")
	describe := flag.Bool("describe", false, "print a summary of the device plugin API as compiled into this binary, and exit")
	flag.Parse()
	if *describe {
		jsonl.PrintDescription((&pluginapi.Device{}).ProtoReflect().Descriptor().ParentFile())
		return
	}
	if *dir == "" {
		fatalf("-dir is required: the directory that stands for /var/lib/kubelet/device-plugins")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatalf("-dir %q: %v", *dir, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		fatalf("-dir %q is not an existing directory; create it first", abs)
	}
	if *rejectFirst < 0 {
		fatalf("-reject-first must be >= 0, got %d", *rejectFirst)
	}

	k := &kubelet{dir: abs, callTimeout: *callTimeout, plugins: map[string]*plugin{}, rejectRemaining: *rejectFirst}
	k.mu.Lock()
	err = k.startLocked()
	k.mu.Unlock()
	if err != nil {
		fatalf("%v", err)
	}
	out.Emit(map[string]any{"event": "listening", "socket": filepath.Join(abs, registrationSocket)})

	quit := make(chan struct{})
	var quitOnce sync.Once
	stop := func() { quitOnce.Do(func() { close(quit) }) }

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; stop() }()

	go k.readCommands(os.Stdin, stop)

	<-quit
	k.shutdown("quit")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fake kubelet: "+format+"\n", args...)
	os.Exit(2)
}

// startLocked does what the kubelet's device manager does when it starts:
// remove every socket in the directory (plugins must notice and register
// again), then serve the Registration service on kubelet.sock.
func (k *kubelet) startLocked() error {
	if err := removeSockets(k.dir); err != nil {
		return err
	}
	sock := filepath.Join(k.dir, registrationSocket)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", sock, err)
	}
	k.generation++
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, &registration{k: k, generation: k.generation})
	k.server = srv
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			out.Emit(map[string]any{"event": "internal-error", "message": fmt.Sprintf("registration server: %v", err)})
		}
	}()
	return nil
}

// removeSockets deletes every unix socket directly inside dir, leaving other
// files and directories alone, as the kubelet does on start.
func removeSockets(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&os.ModeSocket == 0 {
			continue
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("cannot remove socket %s: %w", p, err)
		}
	}
	return nil
}

// stopAllLocked ends every plugin connection and the registration server.
func (k *kubelet) stopAllLocked(reason string) {
	if k.server != nil {
		k.server.Stop() // closes the listener, which unlinks kubelet.sock
		k.server = nil
	}
	for name, p := range k.plugins {
		p.stop(reason)
		delete(k.plugins, name)
	}
}

func (k *kubelet) shutdown(reason string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopAllLocked(reason)
}

// Resource names must be extended resource names, as the kubelet checks with
// v1helper.IsExtendedResourceName: "<domain>/<name>", not in the kubernetes.io
// domains, and a valid qualified name once prefixed with "requests.".
var (
	dnsSubdomain  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	qualifiedName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	socketName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

func checkResourceName(name string) error {
	domain, local, ok := strings.Cut(name, "/")
	switch {
	case !ok:
		return fmt.Errorf("resource name %q is not an extended resource name: it needs a domain prefix, like example.com/%s", name, name)
	case domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io"):
		return fmt.Errorf("resource name %q is in the reserved kubernetes.io domain", name)
	case strings.HasPrefix(name, "requests."):
		return fmt.Errorf("resource name %q must not start with \"requests.\"", name)
	case len("requests."+domain) > 253 || !dnsSubdomain.MatchString("requests."+domain):
		return fmt.Errorf("resource name %q: domain %q is not a lowercase DNS subdomain", name, domain)
	case len(local) == 0 || len(local) > 63 || !qualifiedName.MatchString(local):
		return fmt.Errorf("resource name %q: name part %q must be 1-63 characters of [A-Za-z0-9-_.], starting and ending with an alphanumeric", name, local)
	}
	return nil
}

// registration serves the Registration service for one start of the kubelet.
type registration struct {
	pluginapi.UnimplementedRegistrationServer
	k          *kubelet
	generation int
}

// Register implements the kubelet's Registration service.
func (s *registration) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k := s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.generation != k.generation {
		return nil, status.Error(codes.Unavailable, "fake kubelet restarted while this Register call was in flight; register again")
	}
	k.registrations++
	ev := map[string]any{
		"resourceName": r.GetResourceName(),
		"endpoint":     r.GetEndpoint(),
		"version":      r.GetVersion(),
		"options":      jsonl.Message(r.GetOptions()),
	}
	reject := func(err error) (*pluginapi.Empty, error) {
		ev["event"] = "rejected"
		ev["message"] = err.Error()
		out.Emit(ev)
		// The kubelet answers with a plain error, which gRPC sends as code Unknown.
		return nil, err
	}
	if k.rejectRemaining > 0 {
		k.rejectRemaining--
		return reject(fmt.Errorf("fake kubelet: registration %d rejected on purpose (-reject-first)", k.registrations))
	}
	supported := false
	for _, v := range pluginapi.SupportedVersions {
		if r.GetVersion() == v {
			supported = true
		}
	}
	if !supported {
		return reject(fmt.Errorf("requested API version %q is not supported by kubelet; supported versions are %q", r.GetVersion(), pluginapi.SupportedVersions))
	}
	if err := checkResourceName(r.GetResourceName()); err != nil {
		return reject(err)
	}
	// The endpoint is a file name inside the device-plugin directory; anything
	// else could point the kubelet outside it.
	if !socketName.MatchString(r.GetEndpoint()) || r.GetEndpoint() == registrationSocket {
		return reject(fmt.Errorf("endpoint %q must be a plain socket file name inside the device-plugin directory (not %s)", r.GetEndpoint(), registrationSocket))
	}

	if old, ok := k.plugins[r.GetResourceName()]; ok {
		old.stop("replaced")
		delete(k.plugins, r.GetResourceName())
	}
	p, err := k.connect(r)
	if err != nil {
		return reject(err)
	}
	k.plugins[r.GetResourceName()] = p
	ev["event"] = "registered"
	out.Emit(ev)
	go k.run(p)
	return &pluginapi.Empty{}, nil
}

func (k *kubelet) connect(r *pluginapi.RegisterRequest) (*plugin, error) {
	sock := filepath.Join(k.dir, r.GetEndpoint())
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cannot create a client for %s: %w", sock, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &plugin{
		resourceName: r.GetResourceName(),
		endpoint:     r.GetEndpoint(),
		version:      r.GetVersion(),
		options:      r.GetOptions(),
		conn:         conn,
		client:       pluginapi.NewDevicePluginClient(conn),
		ctx:          ctx,
		cancel:       cancel,
		done:         make(chan struct{}),
	}, nil
}

// run asks the plugin for its options, then follows its ListAndWatch stream
// until it ends, reporting every message.
func (k *kubelet) run(p *plugin) {
	defer close(p.done)
	ctx := p.ctx

	ids := map[string]any{"resourceName": p.resourceName, "endpoint": p.endpoint}
	with := func(fields map[string]any) map[string]any {
		for k, v := range ids {
			fields[k] = v
		}
		return fields
	}

	octx, ocancel := context.WithTimeout(ctx, k.callTimeout)
	opts, err := p.client.GetDevicePluginOptions(octx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	ocancel()
	if err != nil {
		out.Emit(with(merge(map[string]any{"event": "plugin-error", "call": "GetDevicePluginOptions"}, jsonl.ErrorFields(err))))
	} else {
		out.Emit(with(map[string]any{"event": "options", "options": jsonl.Message(opts)}))
	}

	stream, err := p.client.ListAndWatch(ctx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		out.Emit(with(merge(map[string]any{"event": "stream-closed", "reason": k.reason(p, "error")}, jsonl.ErrorFields(err))))
		return
	}
	p.mu.Lock()
	p.streaming = true
	p.mu.Unlock()
	for {
		resp, err := stream.Recv()
		if err != nil {
			p.mu.Lock()
			p.streaming = false
			p.mu.Unlock()
			ev := with(map[string]any{"event": "stream-closed"})
			if errors.Is(err, io.EOF) {
				ev["reason"] = k.reason(p, "plugin-ended-stream")
			} else {
				ev["reason"] = k.reason(p, "error")
				merge(ev, jsonl.ErrorFields(err))
			}
			out.Emit(ev)
			return
		}
		p.mu.Lock()
		p.devices = resp.GetDevices()
		p.mu.Unlock()
		devs := jsonl.Message(resp).(map[string]any)["devices"]
		out.Emit(with(map[string]any{"event": "devices", "devices": devs}))
	}
}

// reason is the kubelet's own reason for ending a stream if it ended it,
// otherwise fallback.
func (k *kubelet) reason(p *plugin, fallback string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closeReason != "" {
		return p.closeReason
	}
	return fallback
}

func merge(dst, src map[string]any) map[string]any {
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// command is one request read from stdin.
type command struct {
	ID           json.RawMessage `json:"id"`
	Cmd          string          `json:"cmd"`
	ResourceName string          `json:"resourceName"`
	Containers   json.RawMessage `json:"containers"`
	Devices      []string        `json:"devices"`
	RejectFirst  *int            `json:"rejectFirst"`
}

type preferredContainer struct {
	Available   []string `json:"available"`
	MustInclude []string `json:"mustInclude"`
	Size        int32    `json:"size"`
}

func (k *kubelet) readCommands(r io.Reader, stop func()) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var wg sync.WaitGroup
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c command
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			out.Emit(map[string]any{"event": "error", "code": "BadCommand", "message": fmt.Sprintf("cannot parse command %q: %v", line, err)})
			continue
		}
		if c.Cmd == "quit" {
			wg.Wait()
			k.shutdown("quit")
			reply(c, map[string]any{"event": "quit"})
			stop()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.handle(c)
		}()
	}
	// stdin closed: whoever started us is gone, so stop too.
	wg.Wait()
	stop()
}

func reply(c command, fields map[string]any) {
	if len(c.ID) > 0 {
		fields["id"] = c.ID
	}
	out.Emit(fields)
}

func replyErr(c command, code, format string, args ...any) {
	reply(c, map[string]any{"event": "error", "code": code, "message": fmt.Sprintf(format, args...)})
}

func (k *kubelet) handle(c command) {
	switch c.Cmd {
	case "restart":
		k.mu.Lock()
		k.stopAllLocked("kubelet-restart")
		if c.RejectFirst != nil {
			k.rejectRemaining = *c.RejectFirst
		}
		err := k.startLocked()
		k.mu.Unlock()
		if err != nil {
			replyErr(c, "Internal", "restart failed: %v", err)
			return
		}
		reply(c, map[string]any{"event": "restarted", "socket": filepath.Join(k.dir, registrationSocket)})
	case "state":
		reply(c, map[string]any{"event": "state", "plugins": k.state()})
	case "options", "allocate", "preferred", "prestart":
		k.call(c)
	default:
		replyErr(c, "BadCommand", "unknown command %q (known: allocate, preferred, options, prestart, state, restart, quit)", c.Cmd)
	}
}

func (k *kubelet) state() []map[string]any {
	k.mu.Lock()
	defer k.mu.Unlock()
	names := make([]string, 0, len(k.plugins))
	for n := range k.plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	res := []map[string]any{}
	for _, n := range names {
		p := k.plugins[n]
		p.mu.Lock()
		devs := jsonl.Message(&pluginapi.ListAndWatchResponse{Devices: p.devices}).(map[string]any)["devices"]
		res = append(res, map[string]any{
			"resourceName": p.resourceName,
			"endpoint":     p.endpoint,
			"version":      p.version,
			"options":      jsonl.Message(p.options),
			"streaming":    p.streaming,
			"devices":      devs,
		})
		p.mu.Unlock()
	}
	return res
}

// call makes one RPC to the plugin registered for c.ResourceName.
func (k *kubelet) call(c command) {
	k.mu.Lock()
	p, ok := k.plugins[c.ResourceName]
	k.mu.Unlock()
	if !ok {
		replyErr(c, "NotRegistered", "no device plugin is registered for resource %q", c.ResourceName)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.callTimeout)
	defer cancel()
	base := map[string]any{"event": c.Cmd, "resourceName": c.ResourceName}
	var (
		resp any
		err  error
	)
	switch c.Cmd {
	case "options":
		var r *pluginapi.DevicePluginOptions
		r, err = p.client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
		base["options"] = jsonl.Message(r)
	case "allocate":
		var containers [][]string
		if err := json.Unmarshal(orEmpty(c.Containers), &containers); err != nil {
			replyErr(c, "BadCommand", "allocate: \"containers\" must be an array of arrays of device IDs: %v", err)
			return
		}
		req := &pluginapi.AllocateRequest{}
		for _, ids := range containers {
			req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerAllocateRequest{DevicesIds: ids})
		}
		var r *pluginapi.AllocateResponse
		r, err = p.client.Allocate(ctx, req)
		resp = jsonl.Message(r)
	case "preferred":
		var containers []preferredContainer
		if err := json.Unmarshal(orEmpty(c.Containers), &containers); err != nil {
			replyErr(c, "BadCommand", "preferred: \"containers\" must be an array of {available, mustInclude, size}: %v", err)
			return
		}
		req := &pluginapi.PreferredAllocationRequest{}
		for _, pc := range containers {
			req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerPreferredAllocationRequest{
				AvailableDeviceIDs:   pc.Available,
				MustIncludeDeviceIDs: pc.MustInclude,
				AllocationSize:       pc.Size,
			})
		}
		var r *pluginapi.PreferredAllocationResponse
		r, err = p.client.GetPreferredAllocation(ctx, req)
		resp = jsonl.Message(r)
	case "prestart":
		var r *pluginapi.PreStartContainerResponse
		r, err = p.client.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: c.Devices})
		resp = jsonl.Message(r)
	}
	if err != nil {
		st := status.Convert(err)
		code := st.Code().String()
		if st.Code() == codes.OK {
			code = codes.Unknown.String()
		}
		replyErr(c, code, "%s", st.Message())
		return
	}
	if resp != nil {
		base["response"] = resp
	}
	reply(c, base)
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("[]")
	}
	return raw
}
