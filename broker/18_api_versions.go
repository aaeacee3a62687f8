package broker

// ApiVersions v0–v4. The response header never carries tagged fields, even for the flexible
// v3+ (Serve clears h.flexible). A request version above the supported range is answered in
// v0 format with UNSUPPORTED_VERSION and the supported ranges, so the client can retry with a
// version both sides know (KIP-511 fallback).

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/netio"
)

func init() {
	register(kmsg.ApiVersions, 0, 4, false, func(b *Broker, h *reqHeader, req *kmsg.ApiVersionsRequest) kmsg.Response {
		resp := b.apiVersionsResponse()
		if h.version >= 3 && (req.ClientSoftwareName == "" || req.ClientSoftwareVersion == "") {
			resp.ErrorCode = errInvalidRequest
		}
		return resp
	})
}

// apiVersionsResponse lists the APIs this node serves: all of them, or on a
// controller-only node the controller APIs.
func (b *Broker) apiVersionsResponse() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	keys := make([]int, 0, len(apis))
	for k := range apis {
		if b.serves(k) {
			keys = append(keys, int(k))
		}
	}
	sort.Ints(keys)
	for _, k := range keys {
		a := apis[int16(k)]
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: int16(k), MinVersion: a.min, MaxVersion: a.max})
	}
	return resp
}

// apiVersionsUnsupported answers an ApiVersions request of an unknown version in v0 format.
func (b *Broker) apiVersionsUnsupported(c *netio.Conn, seq netio.Seq, h *reqHeader) {
	resp := b.apiVersionsResponse()
	resp.ErrorCode = errUnsupportedVersion
	resp.SetVersion(0)
	hv0 := *h
	hv0.flexible = false
	b.reply(c, seq, &hv0, resp)
}
