/* A stand-in for the board vendor's librknn_runtime.so, written for the tests of rknn_server.vendor.
 * It implements the public C API of the RK1808/RV1126 generation (rknn_api.h, toolkit 1.x) for one
 * tiny model format of its own: "STANDIN1", u32 element count n, f32 scale. The model has one input
 * and one output of shape (1, n); the output is the input times the scale. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RKNN_MAX_DIMS 16
#define RKNN_MAX_NAME_LEN 256
#define RKNN_SUCC 0
#define RKNN_ERR_FAIL -1
#define RKNN_ERR_MODEL_INVALID -6
#define RKNN_ERR_CTX_INVALID -7
#define RKNN_ERR_INPUT_INVALID -8

typedef uint64_t rknn_context;
typedef struct { uint32_t n_input, n_output; } rknn_input_output_num;
typedef struct {
    uint32_t index, n_dims, dims[RKNN_MAX_DIMS];
    char name[RKNN_MAX_NAME_LEN];
    uint32_t n_elems, size;
    int fmt, type, qnt_type;
    int8_t fl;
    uint32_t zp;
    float scale;
} rknn_tensor_attr;
typedef struct { uint32_t index; void *buf; uint32_t size; uint8_t pass_through; int type, fmt; } rknn_input;
typedef struct { uint8_t want_float, is_prealloc; uint32_t index; void *buf; uint32_t size; } rknn_output;
typedef struct { char api_version[256], drv_version[256]; } rknn_sdk_version;
typedef struct { int64_t run_duration; } rknn_perf_run;

typedef struct { uint32_t n; float scale; float *input; float *output; int64_t last_run; } model_t;

int rknn_init(rknn_context *context, void *model, uint32_t size, uint32_t flag) {
    (void)flag;
    if (size != 16 || memcmp(model, "STANDIN1", 8) != 0) return RKNN_ERR_MODEL_INVALID;
    model_t *m = calloc(1, sizeof(model_t));
    memcpy(&m->n, (char *)model + 8, 4);
    memcpy(&m->scale, (char *)model + 12, 4);
    m->input = calloc(m->n, sizeof(float));
    m->output = calloc(m->n, sizeof(float));
    *context = (rknn_context)(uintptr_t)m;
    return RKNN_SUCC;
}

int rknn_destroy(rknn_context context) {
    model_t *m = (model_t *)(uintptr_t)context;
    if (!m) return RKNN_ERR_CTX_INVALID;
    free(m->input);
    free(m->output);
    free(m);
    return RKNN_SUCC;
}

static void fill_attr(model_t *m, rknn_tensor_attr *attr, const char *name) {
    attr->n_dims = 2;
    attr->dims[0] = 1;
    attr->dims[1] = m->n;
    strcpy(attr->name, name);
    attr->n_elems = m->n;
    attr->size = m->n * 4;
    attr->type = 0; /* RKNN_TENSOR_FLOAT32 */
    attr->scale = 1.0f;
}

int rknn_query(rknn_context context, int cmd, void *info, uint32_t size) {
    model_t *m = (model_t *)(uintptr_t)context;
    if (!m) return RKNN_ERR_CTX_INVALID;
    switch (cmd) {
    case 0: if (size < sizeof(rknn_input_output_num)) return RKNN_ERR_FAIL;
        ((rknn_input_output_num *)info)->n_input = 1; ((rknn_input_output_num *)info)->n_output = 1; return RKNN_SUCC;
    case 1: case 2: if (size < sizeof(rknn_tensor_attr) || ((rknn_tensor_attr *)info)->index != 0) return RKNN_ERR_FAIL;
        fill_attr(m, info, cmd == 1 ? "input" : "output"); return RKNN_SUCC;
    case 4: ((rknn_perf_run *)info)->run_duration = m->last_run; return RKNN_SUCC;
    case 5: strcpy(((rknn_sdk_version *)info)->api_version, "1.3.2 (standin build)");
        strcpy(((rknn_sdk_version *)info)->drv_version, "1.3.2 (standin driver)"); return RKNN_SUCC;
    default: return RKNN_ERR_FAIL;
    }
}

int rknn_inputs_set(rknn_context context, uint32_t n_inputs, rknn_input inputs[]) {
    model_t *m = (model_t *)(uintptr_t)context;
    if (!m || n_inputs != 1) return RKNN_ERR_INPUT_INVALID;
    for (uint32_t i = 0; i < m->n; i++) {
        if (inputs[0].type == 0 && inputs[0].size == m->n * 4) m->input[i] = ((float *)inputs[0].buf)[i];
        else if (inputs[0].type == 3 && inputs[0].size == m->n) m->input[i] = ((uint8_t *)inputs[0].buf)[i];
        else return RKNN_ERR_INPUT_INVALID;
    }
    return RKNN_SUCC;
}

int rknn_run(rknn_context context, void *extend) {
    (void)extend;
    model_t *m = (model_t *)(uintptr_t)context;
    if (!m) return RKNN_ERR_CTX_INVALID;
    for (uint32_t i = 0; i < m->n; i++) m->output[i] = m->input[i] * m->scale;
    m->last_run = 10 + m->n;
    return RKNN_SUCC;
}

int rknn_outputs_get(rknn_context context, uint32_t n_outputs, rknn_output outputs[], void *extend) {
    (void)extend;
    model_t *m = (model_t *)(uintptr_t)context;
    if (!m || n_outputs != 1 || !outputs[0].want_float) return RKNN_ERR_FAIL;
    outputs[0].buf = malloc(m->n * 4);
    memcpy(outputs[0].buf, m->output, m->n * 4);
    outputs[0].size = m->n * 4;
    return RKNN_SUCC;
}

int rknn_outputs_release(rknn_context context, uint32_t n_outputs, rknn_output outputs[]) {
    (void)context;
    for (uint32_t i = 0; i < n_outputs; i++) { free(outputs[i].buf); outputs[i].buf = NULL; }
    return RKNN_SUCC;
}
