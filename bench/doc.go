// Package bench is a Kafka-protocol load generator: it runs a workload (topics, partitions,
// record sizes, keys, producers and consumers, acks, compression, batching, a fixed or maximal
// rate, a duration or a count) against any Kafka-compatible broker through franz-go, and
// returns a Result: throughput, latency histograms, a per-second series and a verification of
// every record.
//
// It owns the workload format (workload.go, presets in workloads/), the record format that
// makes verification possible (record.go), the schedule that keeps latency honest
// (produce.go), the verifier (verify.go) and the result format (result.go). Rendering results
// as HTML lives in bench/report; flags and files live in cmd/spate-bench.
//
// It must not know anything about Spate: it is a Kafka client and nothing else, so that the
// same run can be pointed at Spate, Apache Kafka, Redpanda or kfake and compared. (Its tests
// start Spate in-process, as a real broker to run against.)
//
// Latency that does not lie. At a fixed rate, record n of producer p of P is due at
//
//	intended(n) = start + (n·P + p) / rate
//
// whatever happened to earlier records. The intended time travels inside the record, and both
// latencies are measured from it: produce-ack latency = ack time − intended time, end-to-end
// latency = consume time − intended time. A stalled broker (or client) therefore shows up as
// latency on every record that should have been sent during the stall, not as one slow
// record followed by fast ones (coordinated omission). Without a rate, records are sent as
// fast as the client accepts them and the intended time is the time of the send.
//
// Producer and consumer run in one process here, so both clocks are the same clock; a run
// split over machines would need synchronised clocks for end-to-end latency.
package bench
