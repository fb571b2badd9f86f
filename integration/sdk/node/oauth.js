'use strict';

// Drives the unmodified co-wechat-oauth SDK (npm co-wechat-oauth@2.0.1)
// against the caddy-wechat gateway: web OAuth, the app's client key where
// the SDK expects the AppSecret. integration/sdk_test.go runs it.
//
//   WX_GATEWAY_KEY=<client key> node oauth.js <gateway URL> <appid> <code>
//
// co-wechat-oauth has no base-URL option: every URL is a literal
// https://api.weixin.qq.com/... string, sent through its request method.
// The script wraps that method to send the same URL to the gateway, the
// equivalent of a hosts-file entry. It prints one JSON line: the user token's
// openid and the user's info, or {"ok":false,...} and exits 1.

const OAuth = require('co-wechat-oauth');

const [gatewayURL, appid, code] = process.argv.slice(2);
const key = process.env.WX_GATEWAY_KEY;
if (!gatewayURL || !appid || !code || !key) {
  console.error('usage: WX_GATEWAY_KEY=<client key> node oauth.js <gateway URL> <appid> <code>');
  process.exit(2);
}

const client = new OAuth(appid, key);
const request = client.request.bind(client);
client.request = (url, opts) => request(url.replace('https://api.weixin.qq.com', gatewayURL.replace(/\/$/, '')), opts);

(async () => {
  try {
    const token = await client.getAccessToken(code);
    const user = await client.getUser(token.data.openid);
    console.log(JSON.stringify({ ok: true, openid: token.data.openid, user_openid: user.openid, has_token: !!token.data.access_token }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: String(err && err.message || err) }));
    process.exit(1);
  }
})();
