// Command guildhall runs Guildhall, a realtime chat backend in the shape of Discord
// on NATS JetStream.
//
//	guildhall serve                   every role in one process: embedded NATS,
//	                                  embedded store, REST + gateway on one port
//	guildhall serve --role gateway --nats-url nats://…   one tier of a cluster
//	guildhall token create --bot NAME [--owner USER]  mint a bot account and print its token
//	guildhall token revoke --token T | --user NAME     revoke one token or all of a user's
//	guildhall nats --cluster-port …   one node of a NATS cluster, for scale-out tiers
//	guildhall nats creds --out DIR    a deployment's bus credentials
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "token":
		err = token(os.Args[2:])
	case "nats":
		err = natsNode(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "guildhall: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "guildhall:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  guildhall serve [flags]                 run Guildhall (see guildhall serve -h)
  guildhall token create --bot NAME [--owner USER]   create a bot account and print its token
  guildhall token revoke (--token T | --user NAME)    revoke one token, or every token of a user
  guildhall nats [flags]                  run one NATS node of a cluster (see guildhall nats -h)
  guildhall nats creds --out DIR          create a deployment's bus credentials
`)
}

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
