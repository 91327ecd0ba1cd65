// Package jsonl holds what both test peers share: writing events as JSON lines
// on stdout, and turning protobuf messages into plain JSON values that show
// every field the generated Go code decoded, under the field names used in
// the .proto files.
package jsonl

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Emitter writes one JSON object per line. It is safe for concurrent use; a
// line is never interleaved with another.
type Emitter struct {
	mu sync.Mutex
}

// Emit writes fields as one JSON line on stdout.
func (e *Emitter) Emit(fields map[string]any) {
	b, err := json.Marshal(fields)
	if err != nil {
		// Only reachable through a programming error in the peer itself.
		b, _ = json.Marshal(map[string]any{"event": "internal-error", "message": fmt.Sprintf("cannot encode event: %v", err)})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = os.Stdout.Write(append(b, '\n'))
}

// Message converts a decoded protobuf message into a JSON-ready map. Unlike
// encoding/json on the generated structs it keeps fields that hold their zero
// value (a NUMA node with ID 0 stays {"ID":0}); an unset message field or an
// unset proto3 optional scalar is null. 64-bit integers stay JSON numbers.
func Message(m proto.Message) any {
	if m == nil {
		return nil
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return nil
	}
	return message(r)
}

func message(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := string(fd.Name())
		switch {
		case fd.IsList():
			l := m.Get(fd).List()
			arr := make([]any, 0, l.Len())
			for j := 0; j < l.Len(); j++ {
				arr = append(arr, value(fd, l.Get(j)))
			}
			out[name] = arr
		case fd.IsMap():
			obj := map[string]any{}
			vd := fd.MapValue()
			m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				obj[k.String()] = value(vd, v)
				return true
			})
			out[name] = obj
		case fd.HasPresence() && !m.Has(fd):
			out[name] = nil
		default:
			out[name] = value(fd, m.Get(fd))
		}
	}
	return out
}

func value(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return message(v.Message())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return int32(v.Enum())
	default:
		// bool, string, bytes (base64 in JSON), and all integer and float kinds.
		return v.Interface()
	}
}

// ErrorFields describes a gRPC error as {"code": <code name>, "message": ...}.
func ErrorFields(err error) map[string]any {
	st := status.Convert(err)
	return map[string]any{"code": st.Code().String(), "message": st.Message()}
}

// Describe summarises the services and messages of a .proto file in a form
// that a test can compare with the same summary of our own copy of the API:
// every message field as "<number> <name> <type>" (type as in .proto syntax:
// "repeated string", "map<string,string>", "optional string", "TopologyInfo")
// and every method as "<name>(<request>) <response>" with "stream " where the
// call streams.
func Describe(fd protoreflect.FileDescriptor) map[string]any {
	messages := map[string]any{}
	for i := 0; i < fd.Messages().Len(); i++ {
		md := fd.Messages().Get(i)
		fds := []protoreflect.FieldDescriptor{}
		for j := 0; j < md.Fields().Len(); j++ {
			fds = append(fds, md.Fields().Get(j))
		}
		sort.Slice(fds, func(a, b int) bool { return fds[a].Number() < fds[b].Number() })
		fields := []string{}
		for _, f := range fds {
			fields = append(fields, fmt.Sprintf("%d %s %s", f.Number(), f.Name(), fieldType(f)))
		}
		messages[string(md.Name())] = fields
	}
	services := map[string]any{}
	for i := 0; i < fd.Services().Len(); i++ {
		sd := fd.Services().Get(i)
		methods := []string{}
		for j := 0; j < sd.Methods().Len(); j++ {
			m := sd.Methods().Get(j)
			methods = append(methods, fmt.Sprintf("%s(%s%s) %s%s", m.Name(),
				streamPrefix(m.IsStreamingClient()), m.Input().Name(),
				streamPrefix(m.IsStreamingServer()), m.Output().Name()))
		}
		services[string(sd.Name())] = methods
	}
	return map[string]any{"package": string(fd.Package()), "messages": messages, "services": services}
}

func streamPrefix(streaming bool) string {
	if streaming {
		return "stream "
	}
	return ""
}

func fieldType(f protoreflect.FieldDescriptor) string {
	if f.IsMap() {
		return fmt.Sprintf("map<%s,%s>", singleType(f.MapKey()), singleType(f.MapValue()))
	}
	t := singleType(f)
	switch {
	case f.IsList():
		return "repeated " + t
	case f.HasOptionalKeyword():
		return "optional " + t
	}
	return t
}

func singleType(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(f.Message().Name())
	case protoreflect.EnumKind:
		return string(f.Enum().Name())
	}
	return f.Kind().String()
}

// PrintDescription writes Describe(fd) as one JSON line on stdout.
func PrintDescription(fd protoreflect.FileDescriptor) {
	b, err := json.Marshal(Describe(fd))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot describe %s: %v\n", fd.Path(), err)
		os.Exit(1)
	}
	_, _ = os.Stdout.Write(append(b, '\n'))
}
