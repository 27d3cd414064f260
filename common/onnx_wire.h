/*
 * onnx_wire.h - unpacks a serialized ONNX ModelProto without copying its
 * weights: a bounds-checked walk of the protobuf wire format (ModelProto ->
 * GraphProto -> initializer TensorProto) finds each initializer's raw_data
 * by offset in the buffer; protobuf-c unpacks the rest, one small message at
 * a time (the model without its graph, the graph without its initializers,
 * each initializer without its raw_data), so that nothing as large as the
 * weights is allocated.
 *
 *     Onnx__ModelProto *m;
 *     if (onnx_wire_unpack(map, len, &m, err, sizeof err)) ...;
 *     ... m->graph->initializer[i]->raw_data.data points into map ...
 *     onnx_wire_free(m);           // before or after map is unmapped
 *
 * Ownership: *out is new (onnx_wire_free); the initializers' raw_data bytes
 * are borrowed from buf, which must outlive their use. Everything else in
 * the message (nodes, Constant nodes' tensors, typed float_data...) is
 * protobuf-c's own copy.
 */
#ifndef ADJ_ONNX_WIRE_H
#define ADJ_ONNX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

/**
 * The message of buf[0..len). ADJ_ERR_FORMAT ("truncated or corrupt": a
 * varint past the end or longer than 10 bytes, a length past its message's
 * end, a field number 0, a group, a wire type protobuf-c refuses, two graph
 * fields), ADJ_ERR_NOMEM.
 */
int onnx_wire_unpack(const uint8_t *buf, size_t len, Onnx__ModelProto **out, char *err,
                     size_t errsz);

/** Frees a message from onnx_wire_unpack (not the borrowed raw_data); NULL is fine. */
void onnx_wire_free(Onnx__ModelProto *m);

#endif
