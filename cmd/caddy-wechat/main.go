// Command caddy-wechat is Caddy with the standard modules and the
// caddy-wechat modules. Run it in the repository's root folder with no
// arguments but `run` to start the offline quick start (./Caddyfile).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/wxgate/caddy-wechat/module"
	_ "github.com/wxgate/caddy-wechat/module/simulator/caddysim"
)

func main() {
	caddycmd.Main()
}
