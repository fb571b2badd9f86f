'use strict';

// Signs a page with the unmodified co-wechat-api SDK (npm co-wechat-api@3.11.0)
// through the caddy-wechat gateway: its jsapi ticket comes from the
// gateway's ticket cache. integration/tickets_test.go runs it.
//
//   WX_GATEWAY_KEY=<client key> node jsconfig.js <gateway URL> <appid> <page URL>
//
// It prints one JSON line: the config getJsConfig made and the ticket it
// used, which the test checks against the gateway's; or {"ok":false,...}.

const API = require('co-wechat-api');
const { parseArgs, printResult } = require('./common');

const { gateway, appid, more: [page], key } = parseArgs('jsconfig.js <gateway URL> <appid> <page URL>', (more) => more.length === 1);

const api = new API(appid, key);
api.setOpts({ timeout: 15000 });
api.prefix = gateway + '/cgi-bin/'; // as client.js does

printResult(key, async () => {
  const config = await api.getJsConfig({ debug: false, jsApiList: ['updateAppMessageShareData'], url: page });
  const ticket = await api.getTicketToken('jsapi');
  return { config, ticket: ticket.ticket };
});
