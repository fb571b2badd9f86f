package msgcrypt

import (
	"bytes"
	"testing"
)

func FuzzDecrypt(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.want)
	}
	f.Add("")
	f.Add("====")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Add("sLR/n4SbHXvKAdlBki8FGNHHNCtIJ0z7i/GtRHMK3X0=\n")
	f.Fuzz(func(t *testing.T, ct string) {
		msg, appid, err := Decrypt(testKey, ct)
		if err == nil {
			// Whatever decrypts re-encrypts to something that decrypts
			// to the same message.
			enc, err := Encrypt(testKey, appid, msg)
			if err != nil {
				t.Fatalf("re-encrypt: %v", err)
			}
			msg2, appid2, err := Decrypt(testKey, enc)
			if err != nil || !bytes.Equal(msg, msg2) || appid != appid2 {
				t.Fatalf("round trip: %q %q %v", msg2, appid2, err)
			}
		}
		// The input as a message round-trips.
		enc, err := Encrypt(testKey, ct, []byte(ct))
		if err != nil {
			t.Fatal(err)
		}
		msg, appid, err = Decrypt(testKey, enc)
		if err != nil || string(msg) != ct || appid != ct {
			t.Fatalf("round trip of %q: %q %q %v", ct, msg, appid, err)
		}
		// Keys too: never a panic.
		_, _, _ = Decrypt(ct, vectors[0].want)
	})
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte("<xml><AppId><![CDATA[wxcomp]]></AppId><Encrypt><![CDATA[" + vectors[0].want + "]]></Encrypt></xml>"))
	f.Add([]byte("<xml><ToUserName>gh</ToUserName><Encrypt>abc</Encrypt></xml>"))
	f.Add([]byte("<xml><AppId>a</AppId><CreateTime>1</CreateTime><InfoType>authorized</InfoType><AuthorizationCodeExpiredTime>x</AuthorizationCodeExpiredTime></xml>"))
	f.Add([]byte("<xml><![CDATA[]]></xml>"))
	f.Add([]byte("<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY a \"b\">]><xml>&a;</xml>"))
	f.Add([]byte("<xml><xml><xml><xml></xml></xml></xml></xml>"))
	f.Add([]byte{0xff, '<', 'x'})
	c := Codec{Token: "t", EncodingAESKey: testKey, AppID: "wxcomp"}
	f.Fuzz(func(t *testing.T, data []byte) {
		if env, err := ParseEnvelope(data); err == nil {
			if env.Encrypt == "" {
				t.Fatal("accepted an envelope without Encrypt")
			}
			back, err := ParseEnvelope(env.Marshal())
			if err != nil || back.Encrypt != env.Encrypt {
				t.Fatalf("re-parse of %+v: %+v %v", env, back, err)
			}
		}
		if ev, err := ParseComponentEvent(data); err == nil {
			if _, err := ParseComponentEvent(ev.Marshal()); err != nil {
				t.Fatalf("re-parse of %+v: %v", ev, err)
			}
		}
		_, _, _ = c.Open(data, "sig", "1", "2")
	})
}
