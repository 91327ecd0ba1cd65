// Command podresources is a stand-in for the kubelet's pod-resources API
// (PodResourcesLister v1) for tests of node agents. What it reports is read
// from a JSON file on every call, so a test changes the answer by rewriting
// that file (write a temporary file, then rename it over the old one). Each
// call is reported as a JSON line on stdout. See ../README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"vmgpu.test/peers/internal/jsonl"
)

var out jsonl.Emitter

// The state file: either an array of pods, or an object with pods and the
// devices reported by GetAllocatableResources.
type stateFile struct {
	Pods        []podJSON    `json:"pods"`
	Allocatable []deviceJSON `json:"allocatable"`
}

type podJSON struct {
	Name       string          `json:"name"`
	Namespace  string          `json:"namespace"`
	Containers []containerJSON `json:"containers"`
}

type containerJSON struct {
	Name    string       `json:"name"`
	Devices []deviceJSON `json:"devices"`
}

type deviceJSON struct {
	ResourceName string   `json:"resourceName"`
	DeviceIDs    []string `json:"deviceIds"`
	NUMANodes    []int64  `json:"numaNodes,omitempty"`
}

func (d deviceJSON) proto() *podresourcesapi.ContainerDevices {
	cd := &podresourcesapi.ContainerDevices{ResourceName: d.ResourceName, DeviceIds: d.DeviceIDs}
	if len(d.NUMANodes) > 0 {
		cd.Topology = &podresourcesapi.TopologyInfo{}
		for _, n := range d.NUMANodes {
			cd.Topology.Nodes = append(cd.Topology.Nodes, &podresourcesapi.NUMANode{ID: n})
		}
	}
	return cd
}

func (p podJSON) proto() *podresourcesapi.PodResources {
	pr := &podresourcesapi.PodResources{Name: p.Name, Namespace: p.Namespace}
	for _, c := range p.Containers {
		cr := &podresourcesapi.ContainerResources{Name: c.Name}
		for _, d := range c.Devices {
			cr.Devices = append(cr.Devices, d.proto())
		}
		pr.Containers = append(pr.Containers, cr)
	}
	return pr
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// load reads the state file. A missing file means no pods.
func load(path string) (*stateFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &stateFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read pods file %s: %w", path, err)
	}
	trimmed := bytes.TrimSpace(data)
	st := &stateFile{}
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = decodeStrict(trimmed, &st.Pods)
	} else {
		err = decodeStrict(trimmed, st)
	}
	if err != nil {
		return nil, fmt.Errorf("pods file %s is not valid (want [{name, namespace, containers:[{name, devices:[{resourceName, deviceIds}]}]}] or {pods, allocatable}): %w", path, err)
	}
	return st, nil
}

type server struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	podsFile string
}

func (s *server) state(method string, extra map[string]any) (*stateFile, error) {
	ev := map[string]any{"event": "call", "method": method}
	for k, v := range extra {
		ev[k] = v
	}
	st, err := load(s.podsFile)
	if err != nil {
		ev["error"] = err.Error()
		out.Emit(ev)
		return nil, status.Error(codes.Internal, err.Error())
	}
	out.Emit(ev)
	return st, nil
}

func (s *server) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	st, err := s.state("List", nil)
	if err != nil {
		return nil, err
	}
	resp := &podresourcesapi.ListPodResourcesResponse{}
	for _, p := range st.Pods {
		resp.PodResources = append(resp.PodResources, p.proto())
	}
	return resp, nil
}

func (s *server) Get(_ context.Context, r *podresourcesapi.GetPodResourcesRequest) (*podresourcesapi.GetPodResourcesResponse, error) {
	st, err := s.state("Get", map[string]any{"podName": r.GetPodName(), "podNamespace": r.GetPodNamespace()})
	if err != nil {
		return nil, err
	}
	for _, p := range st.Pods {
		if p.Name == r.GetPodName() && p.Namespace == r.GetPodNamespace() {
			return &podresourcesapi.GetPodResourcesResponse{PodResources: p.proto()}, nil
		}
	}
	// The kubelet answers with a plain error here, which gRPC sends as code Unknown.
	return nil, fmt.Errorf("pod %s not found in namespace %s", r.GetPodName(), r.GetPodNamespace())
}

func (s *server) GetAllocatableResources(context.Context, *podresourcesapi.AllocatableResourcesRequest) (*podresourcesapi.AllocatableResourcesResponse, error) {
	st, err := s.state("GetAllocatableResources", nil)
	if err != nil {
		return nil, err
	}
	resp := &podresourcesapi.AllocatableResourcesResponse{}
	for _, d := range st.Allocatable {
		resp.Devices = append(resp.Devices, d.proto())
	}
	return resp, nil
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fake pod-resources: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	socket := flag.String("socket", "", "unix socket to serve on, standing for /var/lib/kubelet/pod-resources/kubelet.sock (required)")
	podsFile := flag.String("pods", "", "JSON file with the pods and their devices, re-read on every call (required; may not exist yet)")
	describe := flag.Bool("describe", false, "print a summary of the pod-resources API as compiled into this binary, and exit")
	flag.Parse()
	if *describe {
		jsonl.PrintDescription((&podresourcesapi.PodResources{}).ProtoReflect().Descriptor().ParentFile())
		return
	}
	if *socket == "" || *podsFile == "" {
		fatalf("both -socket and -pods are required")
	}
	sock, err := filepath.Abs(*socket)
	if err != nil {
		fatalf("-socket %q: %v", *socket, err)
	}
	if _, err := load(*podsFile); err != nil {
		fatalf("%v", err)
	}
	if st, err := os.Lstat(sock); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			fatalf("%s exists and is not a socket; refusing to replace it", sock)
		}
		if err := os.Remove(sock); err != nil {
			fatalf("cannot remove stale socket %s: %v", sock, err)
		}
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		fatalf("cannot listen on %s: %v (does the directory exist?)", sock, err)
	}
	srv := grpc.NewServer()
	podresourcesapi.RegisterPodResourcesListerServer(srv, &server{podsFile: *podsFile})
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			out.Emit(map[string]any{"event": "internal-error", "message": fmt.Sprintf("serve: %v", err)})
		}
	}()
	out.Emit(map[string]any{"event": "listening", "socket": sock})

	done := make(chan struct{}, 2)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; done <- struct{}{} }()
	// Exit when stdin closes (the test process is gone) or says "quit".
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if bytes.Contains(sc.Bytes(), []byte(`"quit"`)) {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
	srv.Stop()
	out.Emit(map[string]any{"event": "quit"})
}
