// Package wxapi holds what the gateway knows of the WeChat wire protocol:
// the error codes and what they mean for a token, an allocation-free scan
// for the top-level errcode of a JSON answer, and WeChat-shaped JSON errors.
// It imports nothing beyond the standard library.
package wxapi
