package msgcrypt

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// MaxXMLSize bounds the XML documents ParseEnvelope and ParseComponentEvent
// accept: room for a MaxEncryptedLen ciphertext and its tags.
const MaxXMLSize = MaxEncryptedLen + 4096

// Component event types (InfoType).
const (
	InfoTypeVerifyTicket     = "component_verify_ticket"
	InfoTypeAuthorized       = "authorized"
	InfoTypeUpdateAuthorized = "updateauthorized"
	InfoTypeUnauthorized     = "unauthorized"
)

// Envelope is the XML WeChat POSTs to an encrypted callback:
//
//	<xml><AppId><![CDATA[wx...]]></AppId><Encrypt><![CDATA[...]]></Encrypt></xml>
//
// Open-platform pushes carry AppId (the component_appid); messages to an
// authorizer carry ToUserName (its original id, gh_...).
type Envelope struct {
	ToUserName string `xml:"ToUserName"`
	AppID      string `xml:"AppId"`
	Encrypt    string `xml:"Encrypt"`
}

// ParseEnvelope parses a POSTed envelope. The root must be <xml> and
// Encrypt must be present (ErrNoEncrypt); values are trimmed of white space.
func ParseEnvelope(data []byte) (Envelope, error) {
	env, err := parseXML[Envelope](data)
	if err == nil && env.Encrypt == "" {
		err = ErrNoEncrypt
	}
	return env, err
}

// Marshal returns the envelope as WeChat writes it: CDATA values, empty
// elements left out (Encrypt always present).
func (e Envelope) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<xml>")
	if e.ToUserName != "" {
		cdataElem(&b, "ToUserName", e.ToUserName)
	}
	if e.AppID != "" {
		cdataElem(&b, "AppId", e.AppID)
	}
	cdataElem(&b, "Encrypt", e.Encrypt)
	b.WriteString("</xml>")
	return b.Bytes()
}

// ComponentEvent is a decrypted open-platform push (授权事件):
//
//	<xml><AppId>component appid</AppId><CreateTime>1413192605</CreateTime>
//	<InfoType>component_verify_ticket</InfoType>
//	<ComponentVerifyTicket>ticket@@@...</ComponentVerifyTicket></xml>
//
// authorized and updateauthorized events carry AuthorizerAppID,
// AuthorizationCode, AuthorizationCodeExpiredTime and PreAuthCode;
// unauthorized events AuthorizerAppID.
type ComponentEvent struct {
	AppID                        string `xml:"AppId"`
	CreateTime                   int64  `xml:"CreateTime"`
	InfoType                     string `xml:"InfoType"`
	ComponentVerifyTicket        string `xml:"ComponentVerifyTicket"`
	AuthorizerAppID              string `xml:"AuthorizerAppid"`
	AuthorizationCode            string `xml:"AuthorizationCode"`
	AuthorizationCodeExpiredTime int64  `xml:"AuthorizationCodeExpiredTime"`
	PreAuthCode                  string `xml:"PreAuthCode"`
}

// ParseComponentEvent parses a decrypted component event. The root must be
// <xml>; InfoType and AppId are required (ErrBadEvent); string values are
// trimmed of white space.
func ParseComponentEvent(data []byte) (ComponentEvent, error) {
	ev, err := parseXML[ComponentEvent](data)
	if err == nil && (ev.InfoType == "" || ev.AppID == "") {
		err = ErrBadEvent
	}
	return ev, err
}

// Marshal returns the event as WeChat writes it, leaving out empty fields.
func (e ComponentEvent) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<xml>")
	cdataElem(&b, "AppId", e.AppID)
	numElem(&b, "CreateTime", e.CreateTime)
	cdataElem(&b, "InfoType", e.InfoType)
	if e.ComponentVerifyTicket != "" {
		cdataElem(&b, "ComponentVerifyTicket", e.ComponentVerifyTicket)
	}
	if e.AuthorizerAppID != "" {
		cdataElem(&b, "AuthorizerAppid", e.AuthorizerAppID)
	}
	if e.AuthorizationCode != "" {
		cdataElem(&b, "AuthorizationCode", e.AuthorizationCode)
	}
	if e.AuthorizationCodeExpiredTime != 0 {
		numElem(&b, "AuthorizationCodeExpiredTime", e.AuthorizationCodeExpiredTime)
	}
	if e.PreAuthCode != "" {
		cdataElem(&b, "PreAuthCode", e.PreAuthCode)
	}
	b.WriteString("</xml>")
	return b.Bytes()
}

// parseXML decodes a bounded document, whose root must be <xml>, into a
// struct T, and trims the white space around its string fields. On an
// error it returns the zero T.
func parseXML[T any](data []byte) (T, error) {
	var zero T
	if len(data) > MaxXMLSize {
		return zero, ErrTooLarge
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root xml.StartElement
	for {
		tok, err := dec.Token()
		if err != nil {
			return zero, fmt.Errorf("%w: %v", ErrBadXML, err)
		}
		var ok bool
		if root, ok = tok.(xml.StartElement); ok {
			break
		}
	}
	if root.Name.Local != "xml" {
		return zero, fmt.Errorf("%w: expected element type <xml> but have <%s>", ErrBadXML, root.Name.Local)
	}
	var v T
	if err := dec.DecodeElement(&v, &root); err != nil {
		return zero, fmt.Errorf("%w: %v", ErrBadXML, err)
	}
	fields := reflect.ValueOf(&v).Elem()
	for i := range fields.NumField() {
		if f := fields.Field(i); f.Kind() == reflect.String {
			f.SetString(strings.TrimSpace(f.String()))
		}
	}
	return v, nil
}

// cdataElem writes <name><![CDATA[value]]></name>; a "]]>" inside value is
// split across two sections, and characters XML cannot carry are dropped.
func cdataElem(b *bytes.Buffer, name, value string) {
	b.WriteString("<" + name + "><![CDATA[")
	value = strings.Map(func(r rune) rune {
		if isXMLChar(r) {
			return r
		}
		return -1
	}, value)
	b.WriteString(strings.ReplaceAll(value, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]></" + name + ">")
}

func numElem(b *bytes.Buffer, name string, n int64) {
	b.WriteString("<" + name + ">")
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteString("</" + name + ">")
}

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
