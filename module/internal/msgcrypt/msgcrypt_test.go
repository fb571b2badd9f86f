package msgcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/util"
)

// The key of WeChat's documentation samples.
const testKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

const testAppID = "wxb11529c136998cb6"

var testMsg = []byte("<xml><ToUserName><![CDATA[toUser]]></ToUserName><Content><![CDATA[你好]]></Content></xml>")

// Vectors computed independently with openssl enc -aes-256-cbc -nopad over
// a plaintext built by hand (see TestFixedVectors).
var vectors = []struct {
	random [RandomLen]byte
	msg    []byte
	appid  string
	want   string
}{
	{
		random: [RandomLen]byte([]byte("0123456789abcdef")),
		msg:    testMsg,
		appid:  testAppID,
		want:   "Q3stYC6hdFzMh9T8HCvyDChU+LUJux1Eo84blYhLoUgqzsdc3CbbrQ4B1bhWZuAhjQBEx2hDHL0xnHVcfavRgk3WFZ0ch4/lNeoWfNDaaoj+xQLe24RMst/2Owa5zmi6sSfBzyroj5UGMbVdBDK4LIU8Qpp4CgsZ811KNP6jBlGK7ggF2Whb436fC6agvOyRO1XJ/8j+C2R9sBIuuz+qxw==",
	},
	{
		// Empty message and appid: 20 bytes of header, 12 of padding.
		msg:  []byte{},
		want: "sLR/n4SbHXvKAdlBki8FGNHHNCtIJ0z7i/GtRHMK3X0=",
	},
}

func TestFixedVectors(t *testing.T) {
	for i, v := range vectors {
		got, err := encryptWith(testKey, v.appid, v.msg, v.random)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if got != v.want {
			t.Errorf("vector %d: Encrypt = %s, want %s", i, got, v.want)
		}
		msg, appid, err := Decrypt(testKey, v.want)
		if err != nil || !bytes.Equal(msg, v.msg) || appid != v.appid {
			t.Errorf("vector %d: Decrypt = %q, %q, %v", i, msg, appid, err)
		}
	}
}

func TestSignatureVector(t *testing.T) {
	// sha1("1409304348" + "abc" + "pamtest" + "xxxxxx"), by hand.
	const want = "37e86d3605aec79549952877dac7db069c345a04"
	if got := Signature("pamtest", "1409304348", "xxxxxx", "abc"); got != want {
		t.Fatalf("Signature = %s, want %s", got, want)
	}
	if !VerifySignature("pamtest", "1409304348", "xxxxxx", "abc", strings.ToUpper(want)) {
		t.Error("VerifySignature refuses the upper-case signature")
	}
	if VerifySignature("pamtest", "1409304348", "xxxxxy", "abc", want) {
		t.Error("VerifySignature accepts a signature of other values")
	}
	if got := SignatureOf("pamtest", "1409304348", "xxxxxx"); got != util.Signature("pamtest", "1409304348", "xxxxxx") {
		t.Errorf("SignatureOf (three strings) = %s, silenceper says otherwise", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 11, 12, 13, 31, 32, 33, 100, 4096, 100000} {
		msg := bytes.Repeat([]byte{'x'}, size)
		for _, appid := range []string{"", "wx1", testAppID, strings.Repeat("a", 40)} {
			enc, err := Encrypt(testKey, appid, msg)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := base64.StdEncoding.DecodeString(enc)
			if len(raw)%BlockSize != 0 {
				t.Fatalf("ciphertext of %d bytes", len(raw))
			}
			got, gotApp, err := Decrypt(testKey, enc)
			if err != nil || !bytes.Equal(got, msg) || gotApp != appid {
				t.Fatalf("size %d appid %q: got %d bytes, %q, %v", size, appid, len(got), gotApp, err)
			}
		}
	}
	a, _ := Encrypt(testKey, testAppID, testMsg)
	b, _ := Encrypt(testKey, testAppID, testMsg)
	if a == b {
		t.Error("two encryptions are equal: the random prefix is not random")
	}
}

func TestNewKey(t *testing.T) {
	k := NewKey()
	if len(k) != KeyLen || CheckKey(k) != nil {
		t.Fatalf("NewKey = %q", k)
	}
	if NewKey() == k {
		t.Fatal("NewKey repeats")
	}
}

func TestBadKeys(t *testing.T) {
	for _, k := range []string{"", "short", testKey + "H", testKey[:42] + "=", testKey[:42] + "-", testKey[:42] + "\n", strings.Repeat("é", 21) + "a"} {
		if err := CheckKey(k); !errors.Is(err, ErrBadKey) {
			t.Errorf("CheckKey(%q) = %v", k, err)
		}
		if _, err := Encrypt(k, "a", nil); !errors.Is(err, ErrBadKey) {
			t.Errorf("Encrypt with key %q: %v", k, err)
		}
		if _, _, err := Decrypt(k, vectors[0].want); !errors.Is(err, ErrBadKey) {
			t.Errorf("Decrypt with key %q: %v", k, err)
		}
	}
}

// rawCipher encrypts plaintext (a multiple of 16 bytes) without any
// framing, to build malformed messages.
func rawCipher(t *testing.T, plain []byte) string {
	t.Helper()
	key, err := ParseKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}

func TestDecryptErrors(t *testing.T) {
	framed := func(n uint32, body string, pad int) []byte {
		p := make([]byte, 16, 64)
		p = binary.BigEndian.AppendUint32(p, n)
		p = append(p, body...)
		for range pad {
			p = append(p, byte(pad))
		}
		return p
	}
	padTo32 := func(p []byte) []byte {
		pad := 32 - len(p)%32
		for range pad {
			p = append(p, byte(pad))
		}
		return p
	}
	badPad := padTo32(framed(3, "abcwx", 0))
	badPad[len(badPad)-2] ^= 1 // pad bytes not all equal
	zeroPad := framed(3, "abcwx", 0)
	zeroPad = append(zeroPad, make([]byte, 32-len(zeroPad))...)
	bigPad := framed(3, "abcwx", 0)
	bigPad = append(bigPad, bytes.Repeat([]byte{33}, 32-len(bigPad))...)
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"not base64", "!!!!", ErrBadBase64},
		{"url-safe base64", strings.ReplaceAll(strings.ReplaceAll(vectors[0].want, "+", "-"), "/", "_"), ErrBadBase64},
		{"empty", "", ErrBadLength},
		{"15 bytes", base64.StdEncoding.EncodeToString(make([]byte, 15)), ErrBadLength},
		{"40 bytes", base64.StdEncoding.EncodeToString(make([]byte, 40)), ErrBadLength},
		{"pad 32 in one block", rawCipher(t, bytes.Repeat([]byte{32}, 16)), ErrBadPadding},
		{"unequal pad bytes", rawCipher(t, badPad), ErrBadPadding},
		{"pad 0", rawCipher(t, zeroPad), ErrBadPadding},
		{"pad 33", rawCipher(t, bigPad), ErrBadPadding},
		{"pad eats the header", rawCipher(t, bytes.Repeat([]byte{32}, 32)), ErrBadMsgLength},
		{"header cut", rawCipher(t, append(make([]byte, 18), bytes.Repeat([]byte{14}, 14)...)), ErrBadMsgLength},
		{"length past the end", rawCipher(t, padTo32(framed(6, "abcde", 0))), ErrBadMsgLength},
		{"huge length", rawCipher(t, padTo32(framed(0xffffffff, "abcde", 0))), ErrBadMsgLength},
		{"too large", strings.Repeat("A", MaxEncryptedLen+4), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, appid, err := Decrypt(testKey, c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decrypt = %q, %q, %v; want %v", msg, appid, err, c.want)
			}
		})
	}
	// A length field of exactly the body leaves an empty appid.
	msg, appid, err := Decrypt(testKey, rawCipher(t, padTo32(framed(5, "abcde", 0))))
	if err != nil || string(msg) != "abcde" || appid != "" {
		t.Fatalf("exact length: %q %q %v", msg, appid, err)
	}
	// The wrong key: bad padding (or, rarely, a bad length), never success.
	other := NewKey()
	if _, _, err := Decrypt(other, vectors[0].want); err == nil {
		t.Fatal("decrypted with another key")
	}
}

// TestDecryptPaddedTo16 reads what a standard PKCS#7 library sends: padded
// to AES's 16-byte block rather than WeChat's 32, as WeChat's own samples
// accept. Every length lands half of its ciphertexts on an odd block count.
func TestDecryptPaddedTo16(t *testing.T) {
	for n := range 40 {
		msg := strings.Repeat("m", n)
		plain := make([]byte, 16, 64+n)
		plain = binary.BigEndian.AppendUint32(plain, uint32(n))
		plain = append(append(plain, msg...), "wx3rd"...)
		pad := 16 - len(plain)%16
		plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
		got, appid, err := Decrypt(testKey, rawCipher(t, plain))
		if err != nil || string(got) != msg || appid != "wx3rd" {
			t.Fatalf("%d bytes padded to 16: %q %q %v", n, got, appid, err)
		}
	}
}

func TestEncryptTooLarge(t *testing.T) {
	if _, err := Encrypt(testKey, "wx", make([]byte, MaxEncryptedLen)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encrypt of 1 MiB: %v", err)
	}
	// The largest message that fits decrypts again.
	n := MaxEncryptedLen/4*3 - 64
	enc, err := Encrypt(testKey, "wx", make([]byte, n))
	if err != nil {
		t.Fatal(err)
	}
	if msg, _, err := Decrypt(testKey, enc); err != nil || len(msg) != n {
		t.Fatalf("Decrypt of %d bytes: %v", n, err)
	}
}

// silenceper/wechat is an independent implementation (derived from
// chanxuehong/wechat): both directions must interoperate.
func TestSilenceperInterop(t *testing.T) {
	for _, msg := range [][]byte{testMsg, []byte("x"), bytes.Repeat([]byte("0123456789"), 100)} {
		// silenceper encrypts, msgcrypt decrypts.
		random := []byte("fedcba9876543210")
		enc, err := util.EncryptMsg(random, msg, testAppID, testKey)
		if err != nil {
			t.Fatal(err)
		}
		got, appid, err := Decrypt(testKey, string(enc))
		if err != nil || !bytes.Equal(got, msg) || appid != testAppID {
			t.Fatalf("msgcrypt cannot decrypt silenceper: %q %q %v", got, appid, err)
		}
		mine, err := encryptWith(testKey, testAppID, msg, [RandomLen]byte(random))
		if err != nil || mine != string(enc) {
			t.Fatalf("same random prefix, different ciphertexts:\n%s\n%s", mine, enc)
		}
		// msgcrypt encrypts, silenceper decrypts.
		enc2, err := Encrypt(testKey, testAppID, msg)
		if err != nil {
			t.Fatal(err)
		}
		_, plain, err := util.DecryptMsg(testAppID, enc2, testKey)
		if err != nil || !bytes.Equal(plain, msg) {
			t.Fatalf("silenceper cannot decrypt msgcrypt: %q %v", plain, err)
		}
		// Signatures agree.
		if s, u := Signature("token", "1700000000", "123456", enc2), util.Signature("token", "1700000000", "123456", enc2); s != u {
			t.Fatalf("signature %s, silenceper %s", s, u)
		}
	}
}

func TestCodec(t *testing.T) {
	c := Codec{Token: "tok3n", EncodingAESKey: testKey, AppID: "wxcomponent01"}
	ev := ComponentEvent{AppID: c.AppID, CreateTime: 1700000000, InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@abc"}
	env, sig, err := c.Seal(ev.Marshal(), "1700000000", "42")
	if err != nil {
		t.Fatal(err)
	}
	body := env.Marshal()
	msg, got, err := c.Open(body, sig, "1700000000", "42")
	if err != nil {
		t.Fatal(err)
	}
	if got.AppID != c.AppID {
		t.Errorf("envelope AppId %q", got.AppID)
	}
	back, err := ParseComponentEvent(msg)
	if err != nil || back != ev {
		t.Fatalf("event %+v, %v; want %+v", back, err, ev)
	}
	if _, _, err := c.Open(body, sig, "1700000001", "42"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another timestamp: %v", err)
	}
	other := c
	other.AppID = "wxother"
	if _, _, err := other.Open(body, sig, "1700000000", "42"); !errors.Is(err, ErrAppIDMismatch) {
		t.Errorf("another appid: %v", err)
	}
	wrongKey := c
	wrongKey.EncodingAESKey = NewKey()
	if _, _, err := wrongKey.Open(body, sig, "1700000000", "42"); err == nil {
		t.Error("opened with another key")
	}
	if _, _, err := c.Open([]byte("<xml/>"), sig, "1700000000", "42"); !errors.Is(err, ErrNoEncrypt) {
		t.Errorf("no Encrypt: %v", err)
	}
	bad := c
	bad.EncodingAESKey = "x"
	if _, _, err := bad.Seal(nil, "1", "2"); !errors.Is(err, ErrBadKey) {
		t.Errorf("Seal with a bad key: %v", err)
	}
}
