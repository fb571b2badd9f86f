// Package caddyfile_test checks the Caddyfile syntax of every caddy-wechat
// directive and global option against fixtures in testdata.
//
// A fixture is a Caddyfile, a line of ten dashes, and what it must become:
//   - a JSON document: the adapted config, which must also pass caddy validate;
//   - "adapt error: TEXT": adapting must fail with an error containing TEXT;
//   - "validate error: TEXT": adapting succeeds, validating fails with TEXT.
//
// The environment variable WX_FIXTURE_SECRET is set while fixtures run, so
// that {env.WX_FIXTURE_SECRET} resolves, WX_FIXTURE_KEY and WX_FIXTURE_KEY_OLD
// (client keys) likewise; WX_FIXTURE_EMPTY is set empty.
package caddyfile_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wxgate/caddy-wechat/module"
	_ "github.com/wxgate/caddy-wechat/module/simulator/caddysim"
)

func TestAdaptFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures found: %v", err)
	}
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	// Secrets in fixtures are placeholders; these resolve them for validate.
	t.Setenv("WX_FIXTURE_SECRET", "fixture-secret")
	t.Setenv("WX_FIXTURE_EMPTY", "")
	t.Setenv("WX_FIXTURE_KEY", "fixture-client-key-0123456789")
	t.Setenv("WX_FIXTURE_KEY_OLD", "fixture-client-key-old-0123456789")
	t.Setenv("WX_FIXTURE_AES", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, ok := strings.Cut(string(raw), "----------")
			if !ok {
				t.Fatalf("%s: no ---------- separator", file)
			}
			want = strings.TrimSpace(want)
			adapted, _, adaptErr := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(strings.TrimSpace(caddyfile)+"\n"), nil)

			if text, ok := strings.CutPrefix(want, "adapt error:"); ok {
				expectError(t, "adapt", adaptErr, text)
				return
			}
			if adaptErr != nil {
				t.Fatalf("adapt: %v", adaptErr)
			}
			var cfg caddy.Config
			if err := json.Unmarshal(adapted, &cfg); err != nil {
				t.Fatalf("adapted config is not JSON: %v", err)
			}
			validateErr := caddy.Validate(&cfg)
			if text, ok := strings.CutPrefix(want, "validate error:"); ok {
				expectError(t, "validate", validateErr, text)
				return
			}
			if validateErr != nil {
				t.Errorf("validate: %v", validateErr)
			}
			var got, expected bytes.Buffer
			if err := json.Indent(&got, adapted, "", "\t"); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&expected, []byte(want)); err != nil {
				t.Fatalf("expected part is not JSON: %v", err)
			}
			var wantIndented bytes.Buffer
			_ = json.Indent(&wantIndented, expected.Bytes(), "", "\t")
			if got.String() != wantIndented.String() {
				t.Errorf("adapted config differs\n--- got\n%s\n--- want\n%s", got.String(), wantIndented.String())
			}
		})
	}
}

func expectError(t *testing.T, stage string, err error, text string) {
	t.Helper()
	text = strings.TrimSpace(text)
	if err == nil {
		t.Fatalf("%s succeeded, want an error containing %q", stage, text)
	}
	if !strings.Contains(err.Error(), text) {
		t.Fatalf("%s error %q does not contain %q", stage, err.Error(), text)
	}
}
