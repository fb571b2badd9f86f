'use strict';

// Drives the unmodified co-wechat-oauth SDK (npm co-wechat-oauth@2.0.1)
// against the caddy-wechat gateway: web OAuth, the app's client key where
// the SDK expects the AppSecret. integration/login_test.go runs it.
//
//   WX_GATEWAY_KEY=<client key> node oauth.js <gateway URL> <appid> <code>
//
// co-wechat-oauth has no base-URL option: every URL is a literal
// https://api.weixin.qq.com/... string, sent through its request method.
// The script wraps that method to send the same URL to the gateway, the
// equivalent of a hosts-file entry. It prints one JSON line: the user token's
// openid and the user's info, or {"ok":false,...} and exits 1.

const OAuth = require('co-wechat-oauth');
const { parseArgs, printResult } = require('./common');

const { gateway, appid, more: [code], key } = parseArgs('oauth.js <gateway URL> <appid> <code>', (more) => more.length === 1);

const client = new OAuth(appid, key);
const request = client.request.bind(client);
client.request = (url, opts) => request(url.replace('https://api.weixin.qq.com', gateway), opts);

printResult(key, async () => {
  const token = await client.getAccessToken(code);
  const user = await client.getUser(token.data.openid);
  return { openid: token.data.openid, user_openid: user.openid, has_token: !!token.data.access_token };
});
