/*
 * fuzz_onnx.c - the ONNX loader on untrusted bytes: onnx_load_buffer (the
 * protobuf, initializers, attributes, shape inference, constant and
 * BatchNormalization folding, gr_finalize) with external data refused and a
 * 1 MiB model limit. A model that loads must report an input shape and its
 * outputs, and must answer gr_backward_check either way; nothing is run
 * (a context's buffers could be as large as the fuzzed shapes).
 */
#include <stdint.h>
#include <stdlib.h>

#include "graph.h"
#include "onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ADJ_ERRLEN];
    onnx_opts o = {0};
    o.max_bytes = 1u << 20;
    gr_graph *g = NULL;
    if (onnx_load_buffer(data, size, NULL, &o, &g, err, sizeof err) == ADJ_OK) {
        op_shape s;
        int batched;
        gr_input_shape(g, &s, &batched);
        if (s.rank < 0 || s.rank > OP_MAX_RANK || gr_n_outputs(g) < 1)
            abort();
        for (int i = 0; i < gr_n_outputs(g); i++)
            gr_output_info(g, i, &s, NULL, NULL);
        gr_backward_check(g, err, sizeof err);
        gr_free(g);
    } else if (g) {
        abort(); /* a failure must not hand out a graph */
    }
    return 0;
}
