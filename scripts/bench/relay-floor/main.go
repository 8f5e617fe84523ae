// relay-floor: the least a relay between `docker save` and a layer reader can do, for `npm run bench -- scan-relay`
// to measure beside the plugin: no start-up to speak of, no HTTP server, no tar walk, no Clair requests. It GETs the
// export from the daemon's unix socket and writes every byte, as read, to one TCP connection whose reader throws
// them away. What it costs is what any relay costs on this machine and daemon; the plugin's cost beyond it is its own.
//
//	relay-floor sink ADDR                  accept connections on ADDR, discard what they send; prints the address
//	relay-floor relay SOCKET IMAGE ADDR    export IMAGE from the daemon at SOCKET to the sink at ADDR
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "sink" {
		sink(os.Args[2])
		return
	}
	if len(os.Args) == 5 && os.Args[1] == "relay" {
		relay(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	fail(fmt.Errorf("usage: relay-floor sink ADDR | relay SOCKET IMAGE ADDR"))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "relay-floor: %v\n", err)
	os.Exit(1)
}

func sink(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err)
	}
	fmt.Println(ln.Addr().String())
	for {
		conn, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		go func() {
			defer conn.Close()
			// One reused buffer of 1 MiB, as the bench's discarding Clair double reads (the wrapper keeps io.Discard's
			// own ReadFrom, with its 8 KiB buffers, out of it).
			_, _ = io.CopyBuffer(io.Discard, struct{ io.Reader }{conn}, make([]byte, 1<<20))
		}()
	}
}

func relay(socket, image, addr string) {
	daemon := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := daemon.Get("http://docker/images/" + url.PathEscape(image) + "/get")
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail(fmt.Errorf("GET /images/%s/get: %s", image, resp.Status))
	}
	out, err := net.Dial("tcp", addr)
	if err != nil {
		fail(err)
	}
	// The plugin reads the daemon's socket in up to 256 KiB: the same here. The wrappers make io.CopyBuffer use this
	// buffer (the connection's own ReadFrom would copy through one of 32 KiB).
	n, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{resp.Body}, make([]byte, 256<<10))
	if err != nil {
		fail(err)
	}
	if err := out.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("relayed %d bytes\n", n)
}
