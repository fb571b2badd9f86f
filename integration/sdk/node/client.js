'use strict';

// Drives the unmodified co-wechat-api SDK (npm co-wechat-api@3.11.0) against
// the caddy-wechat gateway, as an app that adopted the gateway by changing
// only its SDK's base URL: the SDK fetches its token from the gateway with
// the client's gateway key where it expects the AppSecret, and makes its
// usual calls with that token. integration/sdk_test.go runs it.
//
//   WX_GATEWAY_KEY=<client key> node client.js <gateway URL> <appid> [--pause]
//
// It prints one JSON line per phase on stdout. Phase 1: token fetch, user
// info, menu create and get, custom message, media upload and download.
// With --pause it then waits for a line on stdin (the test invalidates the
// real token meanwhile) and runs phase 2 with the token it already holds:
// user info, menu get, custom message, media upload and download. On a
// failure it prints {"ok":false,...} and exits 1.

const crypto = require('crypto');
const readline = require('readline');
const API = require('co-wechat-api');
const { parseArgs, redact } = require('./common');

const { gateway: base, appid, more: [flag], key } = parseArgs('client.js <gateway URL> <appid> [--pause]',
  (more) => more.length === 0 || (more.length === 1 && more[0] === '--pause'));

const openid = 'o6_bmjrPTlm6_2sgVt7hMZOPfL2M';
const menu = { button: [{ type: 'click', name: '今日推荐', key: 'TODAY' }] };

// The gateway key stands where the SDK expects the AppSecret.
const api = new API(appid, key);
api.setOpts({ timeout: 15000 }); // httpx's default is 3 s; CI machines can be slow

// co-wechat-api has no base-URL option: every URL is one of these prefix
// properties plus a path (see lib/api_common.js). The ones on
// api.weixin.qq.com (and the legacy media host file.api.weixin.qq.com) are
// pointed at the gateway, path kept. mpPrefix (https://mp.weixin.qq.com/cgi-bin/)
// only builds the public showqrcode page URL that apps hand to browsers: no
// call, no token, so it stays. The card APIs (lib/api_card.js) hardcode
// https://api.weixin.qq.com/card/; this script does not use them.
api.prefix = base + '/cgi-bin/';
api.fileServerPrefix = base + '/cgi-bin/';
api.snsPrefix = base + '/sns/';
api.payPrefix = base + '/pay/';
api.merchantPrefix = base + '/merchant/';
api.customservicePrefix = base + '/customservice/';
api.wxaPrefix = base + '/wxa/';

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

let op = 'start';
async function step(name, fn) {
  op = name;
  return fn();
}

async function heldToken() {
  const t = await api.getToken();
  return t && t.accessToken ? sha256(t.accessToken) : '';
}

// media uploads random bytes as a JPEG and downloads them again.
async function media(out) {
  const img = crypto.randomBytes(3000);
  const up = await step('media upload', () => api.uploadMedia(img, 'image', 'photo.jpg', 'image/jpeg'));
  if (!up || !up.media_id) throw new Error('upload answered no media_id: ' + JSON.stringify(up));
  const got = await step('media download', () => api.getMedia(up.media_id));
  if (!Buffer.isBuffer(got)) throw new Error('download answered ' + typeof got + ': ' + JSON.stringify(got));
  out.media_uploaded = img.length;
  out.media_downloaded = got.length;
  out.media_equal = got.equals(img);
}

async function calls(out) {
  const user = await step('user info', () => api.getUser(openid));
  out.user_openid = user.openid;
}

async function phase1() {
  const out = { phase: 1, ok: true };
  const token = await step('token fetch', () => api.ensureAccessToken());
  out.token_sha256 = sha256(token.accessToken);
  out.token_seconds = Math.round((token.expireTime - Date.now()) / 1000);
  await calls(out);
  const created = await step('menu create', () => api.createMenu(menu));
  out.menu_create_errcode = created.errcode;
  return finish(out, 'hello through the gateway');
}

async function phase2() {
  const out = { phase: 2, ok: true };
  await calls(out);
  return finish(out, 'hello again');
}

// finish ends a phase: menu get, a custom message with text, media upload
// and download, and the token the SDK holds by then.
async function finish(out, text) {
  const got = await step('menu get', () => api.getMenu());
  out.menu_key = got.menu.button[0].key;
  const sent = await step('custom message', () => api.sendText(openid, text));
  out.custom_send_errcode = sent.errcode;
  await media(out);
  out.held_token_sha256 = await heldToken();
  return out;
}

function waitLine() {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin });
    let got = false;
    rl.once('line', () => { got = true; resolve(); rl.close(); });
    rl.once('close', () => { if (!got) reject(new Error('stdin closed before the go-ahead for phase 2')); });
  });
}

async function main() {
  console.log(JSON.stringify(await phase1()));
  if (flag !== '--pause') return;
  op = 'waiting';
  await waitLine();
  console.log(JSON.stringify(await phase2()));
}

main().then(() => process.exit(0), (err) => {
  console.log(JSON.stringify({ ok: false, op, error: redact(err && err.message, key), name: err && err.name, code: err && err.code }));
  process.exit(1);
});
