/*
 * gradcheck.h - finite-difference checks of the engine's gradients, shared by
 * the layer and network tests.
 */
#ifndef ADJ_GRADCHECK_H
#define ADJ_GRADCHECK_H

#include "model.h"

/**
 * Checks net_backward's input gradient of a model built from spec with random
 * weights (seed) on a batch of n random inputs against central differences
 * with step h (input units). Checks up to max_coords coordinates per image.
 * Returns the number of mismatching coordinates (relative error over tol);
 * a few are expected where a step crosses a ReLU or max-pool kink (callers
 * allow 5%; a wrong gradient is off nearly everywhere);
 * *checked receives how many were compared.
 */
int gc_input(const model_spec *spec, uint64_t seed, int n, float h, float tol, int max_coords,
             int *checked);

/** The same for the weight gradients (NET_ENGINE_GRAPH_TRAINING): up to max_coords
 *  weights per parameter layer. */
int gc_weights(const model_spec *spec, uint64_t seed, int n, float h, float tol, int max_coords,
               int *checked);

#endif
