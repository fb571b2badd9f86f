package msgcrypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseEnvelope(t *testing.T) {
	env, err := ParseEnvelope([]byte("<xml>\n  <AppId><![CDATA[wxcomp]]></AppId>\n  <Encrypt><![CDATA[ abc= ]]></Encrypt>\n</xml>"))
	if err != nil || env.AppID != "wxcomp" || env.Encrypt != "abc=" || env.ToUserName != "" {
		t.Fatalf("%+v %v", env, err)
	}
	env, err = ParseEnvelope([]byte("<xml><ToUserName><![CDATA[gh_123]]></ToUserName><Encrypt>abc</Encrypt></xml>"))
	if err != nil || env.ToUserName != "gh_123" || env.Encrypt != "abc" {
		t.Fatalf("%+v %v", env, err)
	}
	for _, c := range []struct {
		in   string
		want error
	}{
		{"", ErrBadXML},
		{"not xml", ErrBadXML},
		{"<root><Encrypt>abc</Encrypt></root>", ErrBadXML},
		{"<xml><Encrypt>abc</Encrypt>", ErrBadXML},
		{"<xml><AppId>wx</AppId></xml>", ErrNoEncrypt},
		{"<xml><Encrypt>  </Encrypt></xml>", ErrNoEncrypt},
		{"<xml><Encrypt>" + strings.Repeat("A", MaxXMLSize) + "</Encrypt></xml>", ErrTooLarge},
	} {
		if _, err := ParseEnvelope([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("ParseEnvelope(%.40q) = %v, want %v", c.in, err, c.want)
		}
	}
}

func TestEnvelopeMarshal(t *testing.T) {
	e := Envelope{AppID: "wx]]>odd", Encrypt: "abc="}
	b := e.Marshal()
	if !bytes.HasPrefix(b, []byte("<xml><AppId><![CDATA[")) || bytes.Contains(b, []byte("ToUserName")) {
		t.Fatalf("%s", b)
	}
	back, err := ParseEnvelope(b)
	if err != nil || back != e {
		t.Fatalf("round trip %+v %v", back, err)
	}
	e = Envelope{ToUserName: "gh_1", Encrypt: "x"}
	if back, err := ParseEnvelope(e.Marshal()); err != nil || back != e {
		t.Fatalf("round trip %+v %v", back, err)
	}
}

func TestComponentEvents(t *testing.T) {
	// As in WeChat's documentation.
	doc := `<xml>
<AppId>some_appid</AppId>
<CreateTime>1413192605</CreateTime>
<InfoType>component_verify_ticket</InfoType>
<ComponentVerifyTicket>some_verify_ticket</ComponentVerifyTicket>
</xml>`
	ev, err := ParseComponentEvent([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if ev != (ComponentEvent{AppID: "some_appid", CreateTime: 1413192605, InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "some_verify_ticket"}) {
		t.Fatalf("%+v", ev)
	}
	doc = `<xml><AppId><![CDATA[第三方平台appid]]></AppId><CreateTime> 1413192760 </CreateTime>
<InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[wxauth]]></AuthorizerAppid>
<AuthorizationCode><![CDATA[queryauthcode@@@x]]></AuthorizationCode>
<AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime>
<PreAuthCode><![CDATA[preauthcode@@@y]]></PreAuthCode></xml>`
	ev, err = ParseComponentEvent([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := ComponentEvent{AppID: "第三方平台appid", CreateTime: 1413192760, InfoType: InfoTypeAuthorized, AuthorizerAppID: "wxauth",
		AuthorizationCode: "queryauthcode@@@x", AuthorizationCodeExpiredTime: 1413196360, PreAuthCode: "preauthcode@@@y"}
	if ev != want {
		t.Fatalf("%+v", ev)
	}
	if back, err := ParseComponentEvent(want.Marshal()); err != nil || back != want {
		t.Fatalf("round trip %+v %v", back, err)
	}
	un := ComponentEvent{AppID: "wxc", CreateTime: 1, InfoType: InfoTypeUnauthorized, AuthorizerAppID: "wxa"}
	b := un.Marshal()
	if bytes.Contains(b, []byte("AuthorizationCode")) || bytes.Contains(b, []byte("PreAuthCode")) {
		t.Errorf("empty fields written: %s", b)
	}
	for _, c := range []struct {
		in   string
		want error
	}{
		{"<xml><AppId>a</AppId></xml>", ErrBadEvent},
		{"<xml><InfoType>authorized</InfoType></xml>", ErrBadEvent},
		{"<xml><AppId>a</AppId><InfoType>x</InfoType><CreateTime>soon</CreateTime></xml>", ErrBadXML},
		{"<event/>", ErrBadXML},
		{strings.Repeat(" ", MaxXMLSize+1), ErrTooLarge},
	} {
		if _, err := ParseComponentEvent([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("ParseComponentEvent(%.40q) = %v, want %v", c.in, err, c.want)
		}
	}
}

func TestMarshalDropsNonXMLCharacters(t *testing.T) {
	ev := ComponentEvent{AppID: "wx\x00\x01c", InfoType: "authorized", PreAuthCode: "a]]>b"}
	back, err := ParseComponentEvent(ev.Marshal())
	if err != nil || back.AppID != "wxc" || back.PreAuthCode != "a]]>b" {
		t.Fatalf("%+v %v", back, err)
	}
}
