// Package msgcrypt implements WeChat's message encryption for third-party
// platforms and encrypted-mode callbacks (WXBizMsgCrypt): the AES-256-CBC
// scheme keyed by an EncodingAESKey, the SHA-1 msg_signature, and the XML
// envelope WeChat POSTs to a callback URL, plus the component events of the
// open platform (component_verify_ticket, authorized, updateauthorized,
// unauthorized).
//
// The scheme, as WeChat's reference implementations do it:
//
//	key        = base64decode(EncodingAESKey + "=")   (32 bytes)
//	iv         = key[:16]
//	plaintext  = random(16) + uint32be(len(msg)) + msg + appid
//	ciphertext = base64(AES-256-CBC(key, iv, PKCS#7(plaintext, 32)))
//	signature  = hex(sha1(concat(sort(token, timestamp, nonce, ciphertext))))
//
// The encryption is not authenticated: check the signature (Codec.Open does)
// before decrypting anything. Every function here is safe on any input: none
// panics, and every failure is one of the exported error values (possibly
// wrapped; test with errors.Is).
package msgcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
)

// Sizes of the scheme.
const (
	// KeyLen is the length of an EncodingAESKey: 43 base64 characters.
	KeyLen = 43
	// BlockSize is the PKCS#7 block size WeChat pads to (twice the AES
	// block). Encrypt pads to it; Decrypt takes any whole number of AES
	// blocks with 1 to 32 bytes of padding, as WeChat's own samples do, so
	// that a sender padding to AES's 16 bytes is read too.
	BlockSize = 32
	// RandomLen is the length of the random prefix of the plaintext.
	RandomLen = 16
	// MaxEncryptedLen bounds the base64 ciphertext Decrypt accepts and
	// Encrypt produces (1 MiB); WeChat's pushes are a few KiB.
	MaxEncryptedLen = 1 << 20
)

// Errors. Decrypt, ParseEnvelope, ParseComponentEvent and Codec.Open return
// these (possibly wrapped with detail).
var (
	// ErrBadKey: the EncodingAESKey is not 43 base64 characters decoding
	// to 32 bytes.
	ErrBadKey = errors.New("msgcrypt: EncodingAESKey must be 43 base64 characters")
	// ErrBadBase64: the ciphertext is not standard base64.
	ErrBadBase64 = errors.New("msgcrypt: ciphertext is not valid base64")
	// ErrBadLength: the decoded ciphertext is empty or not a whole number
	// of AES blocks (16 bytes).
	ErrBadLength = errors.New("msgcrypt: ciphertext length is not a positive multiple of 16 bytes")
	// ErrBadPadding: the PKCS#7 padding is not 1 to 32 equal bytes (a wrong
	// key, usually).
	ErrBadPadding = errors.New("msgcrypt: bad PKCS#7 padding")
	// ErrBadMsgLength: the plaintext is too short for its header, or its
	// length field points past its end.
	ErrBadMsgLength = errors.New("msgcrypt: message length field out of range")
	// ErrTooLarge: an input or output passes MaxEncryptedLen or MaxXMLSize.
	ErrTooLarge = errors.New("msgcrypt: input too large")
	// ErrBadSignature: msg_signature does not match.
	ErrBadSignature = errors.New("msgcrypt: signature mismatch")
	// ErrAppIDMismatch: the message decrypted, but for another appid.
	ErrAppIDMismatch = errors.New("msgcrypt: message is for another appid")
	// ErrBadXML: the XML is malformed or its root element is not <xml>.
	ErrBadXML = errors.New("msgcrypt: malformed XML")
	// ErrNoEncrypt: an envelope without an <Encrypt> element.
	ErrNoEncrypt = errors.New("msgcrypt: envelope has no Encrypt element")
	// ErrBadEvent: a component event without InfoType or AppId.
	ErrBadEvent = errors.New("msgcrypt: component event lacks InfoType or AppId")
)

// ParseKey decodes an EncodingAESKey into the 32-byte AES key.
func ParseKey(encodingAESKey string) ([]byte, error) {
	if len(encodingAESKey) != KeyLen || strings.ContainsAny(encodingAESKey, "=\r\n") {
		return nil, ErrBadKey
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrBadKey
	}
	return key, nil
}

// CheckKey reports whether encodingAESKey is a usable EncodingAESKey (nil) or
// ErrBadKey.
func CheckKey(encodingAESKey string) error {
	_, err := ParseKey(encodingAESKey)
	return err
}

// NewKey returns a random EncodingAESKey.
func NewKey() string {
	var key [32]byte
	_, _ = rand.Read(key[:]) // never fails
	return base64.RawStdEncoding.EncodeToString(key[:])
}

// Signature returns WeChat's msg_signature: the lowercase hex SHA-1 of the
// four strings sorted and concatenated. With encrypted == "" it is not the
// three-string URL signature: use SignatureOf for that.
func Signature(token, timestamp, nonce, encrypted string) string {
	return SignatureOf(token, timestamp, nonce, encrypted)
}

// SignatureOf is Signature over any number of strings, e.g. the
// three-string `signature` (token, timestamp, nonce) of callback URLs.
func SignatureOf(parts ...string) string {
	sorted := append([]string(nil), parts...)
	sort.Strings(sorted)
	h := sha1.New()
	for _, p := range sorted {
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VerifySignature reports, in constant time, whether signature is the
// msg_signature of the other four (hex case is ignored).
func VerifySignature(token, timestamp, nonce, encrypted, signature string) bool {
	want := Signature(token, timestamp, nonce, encrypted)
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(signature))) == 1
}

// Encrypt encrypts msg for appid with the EncodingAESKey and returns the
// base64 ciphertext (the content of <Encrypt>).
func Encrypt(encodingAESKey, appid string, msg []byte) (string, error) {
	var random [RandomLen]byte
	_, _ = rand.Read(random[:]) // never fails
	return encryptWith(encodingAESKey, appid, msg, random)
}

// encryptWith is Encrypt with the random prefix given (tests).
func encryptWith(encodingAESKey, appid string, msg []byte, random [RandomLen]byte) (string, error) {
	key, err := ParseKey(encodingAESKey)
	if err != nil {
		return "", err
	}
	contentLen := RandomLen + 4 + len(msg) + len(appid)
	pad := BlockSize - contentLen%BlockSize // 1..32
	total := contentLen + pad
	if len(msg) > MaxEncryptedLen || base64.StdEncoding.EncodedLen(total) > MaxEncryptedLen {
		return "", ErrTooLarge
	}
	plain := make([]byte, total)
	copy(plain, random[:])
	binary.BigEndian.PutUint32(plain[RandomLen:], uint32(len(msg)))
	n := copy(plain[RandomLen+4:], msg)
	copy(plain[RandomLen+4+n:], appid)
	for i := contentLen; i < total; i++ {
		plain[i] = byte(pad)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", ErrBadKey
	}
	cipher.NewCBCEncrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, plain)
	return base64.StdEncoding.EncodeToString(plain), nil
}

// Decrypt decrypts a base64 ciphertext with the EncodingAESKey and returns
// the message and the appid it was encrypted for. It checks the base64, the
// length (whole AES blocks), the padding (1 to 32 equal bytes, so padded to
// 32 bytes as WeChat does or to 16 as a standard PKCS#7 library does) and
// the length field, never trusting any of them; a wrong key usually shows
// as ErrBadPadding.
func Decrypt(encodingAESKey, ciphertextB64 string) (msg []byte, appid string, err error) {
	key, err := ParseKey(encodingAESKey)
	if err != nil {
		return nil, "", err
	}
	if len(ciphertextB64) > MaxEncryptedLen {
		return nil, "", ErrTooLarge
	}
	data, err := base64.StdEncoding.DecodeString(ciphertextB64)
	if err != nil {
		return nil, "", ErrBadBase64
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, "", ErrBadLength
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, "", ErrBadKey
	}
	cipher.NewCBCDecrypter(block, key[:aes.BlockSize]).CryptBlocks(data, data)

	pad := int(data[len(data)-1])
	if pad < 1 || pad > BlockSize || pad > len(data) {
		return nil, "", ErrBadPadding
	}
	for _, b := range data[len(data)-pad:] {
		if int(b) != pad {
			return nil, "", ErrBadPadding
		}
	}
	plain := data[:len(data)-pad]
	if len(plain) < RandomLen+4 {
		return nil, "", ErrBadMsgLength
	}
	n := uint64(binary.BigEndian.Uint32(plain[RandomLen:]))
	body := plain[RandomLen+4:]
	if n > uint64(len(body)) {
		return nil, "", ErrBadMsgLength
	}
	return body[:n:n], string(body[n:]), nil
}

// Codec seals and opens the encrypted callbacks of one platform (or one
// account in encrypted mode): its message token, EncodingAESKey and appid
// (the component_appid of a third-party platform).
type Codec struct {
	Token          string
	EncodingAESKey string
	AppID          string
}

// Seal encrypts msg for c.AppID and returns the envelope to POST (AppId and
// Encrypt set; set ToUserName for messages to an authorizer) and its
// msg_signature for the given timestamp and nonce.
func (c Codec) Seal(msg []byte, timestamp, nonce string) (env Envelope, msgSignature string, err error) {
	enc, err := Encrypt(c.EncodingAESKey, c.AppID, msg)
	if err != nil {
		return Envelope{}, "", err
	}
	return Envelope{AppID: c.AppID, Encrypt: enc}, Signature(c.Token, timestamp, nonce, enc), nil
}

// Open parses a POSTed envelope, checks its msg_signature (before
// decrypting anything) and decrypts it. When c.AppID is set the message must
// be for it (ErrAppIDMismatch).
func (c Codec) Open(body []byte, msgSignature, timestamp, nonce string) (msg []byte, env Envelope, err error) {
	env, err = ParseEnvelope(body)
	if err != nil {
		return nil, env, err
	}
	if !VerifySignature(c.Token, timestamp, nonce, env.Encrypt, msgSignature) {
		return nil, env, ErrBadSignature
	}
	msg, appid, err := Decrypt(c.EncodingAESKey, env.Encrypt)
	if err != nil {
		return nil, env, err
	}
	if c.AppID != "" && appid != c.AppID {
		return nil, env, ErrAppIDMismatch
	}
	return msg, env, nil
}
