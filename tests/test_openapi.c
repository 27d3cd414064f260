/*
 * test_openapi.c - GET /openapi.yaml: the daemon serves server/openapi.yaml
 * byte for byte (built in at build time, like the demo page), as
 * application/yaml, without the token; other methods are 405. And two
 * answers of the one error map (server/srv_status.c) through the daemon:
 * an unknown job is 404 (ADJ_ERR_NOTFOUND), a bad parameter 400.
 * The document's validity is checked by test_openapi_valid.sh.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_harness.h"
#include "testutil.h"

int main(void)
{
    const char *yaml_path = getenv("ADVJPG_OPENAPI");
    if (!sh_program() || !yaml_path) {
        fprintf(stderr, "SKIP: $ADVJPGD or $ADVJPG_OPENAPI is not set\n");
        return 77;
    }
    static char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", tu_tmpdir());
    sh_init(tmp);
    size_t want_len = 0;
    uint8_t *want = tu_read_file(yaml_path, &want_len);
    CHECK(want && want_len > 1000, "read %s", yaml_path);

    char jobs[600];
    snprintf(jobs, sizeof jobs, "%s/jobs", tmp);
    const char *args[] = {"--token", "s3cret", "--jobs-dir", jobs, NULL};
    sh_daemon d;
    if (sh_start(&d, "openapi", args, 60)) {
        CHECK(0, "the daemon starts");
        free(want);
        return tu_done();
    }
    sh_resp r;
    char type[128];
    sh_http(d.port, "GET", "/openapi.yaml", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "GET /openapi.yaml without the token: %ld", r.status);
    CHECK(sh_header(&r, "Content-Type", type, sizeof type) && !strcmp(type, "application/yaml"),
          "Content-Type: %s", type);
    CHECK(want && r.len == want_len && memcmp(r.body, want, want_len) == 0,
          "the body is server/openapi.yaml byte for byte (%zu bytes, want %zu)", r.len, want_len);
    CHECK(strstr((const char *)r.body, "\n  /openapi.yaml:\n") != NULL,
          "the document describes /openapi.yaml itself");
    sh_resp_free(&r);

    sh_http(d.port, "POST", "/openapi.yaml", NULL, "x", 1, &r);
    CHECK(r.status == 405, "POST /openapi.yaml: %ld", r.status);
    sh_resp_free(&r);

    /* the error map: adj codes from srv_jobs and the parameter checks */
    const char *auth[] = {"Authorization: Bearer s3cret", NULL};
    sh_http(d.port, "GET", "/jobs/0123456789abcdef", auth, NULL, 0, &r);
    CHECK(r.status == 404 && strstr((const char *)r.body, "no such job"),
          "an unknown job: %ld %s", r.status, (const char *)r.body);
    sh_resp_free(&r);
    sh_http(d.port, "GET", "/jobs/0123456789abcdef/result", auth, NULL, 0, &r);
    CHECK(r.status == 404 && strstr((const char *)r.body, "no such job"),
          "an unknown job's result: %ld %s", r.status, (const char *)r.body);
    sh_resp_free(&r);
    sh_http(d.port, "POST", "/evaluate", (const char *[]){auth[0], "Content-Type: application/json", NULL},
            "{\"dataset\": \"../x\"}", 19, &r);
    CHECK(r.status == 400, "a dataset outside the data root: %ld %s", r.status, (const char *)r.body);
    sh_resp_free(&r);

    sh_stop(&d, SIGTERM, 30);
    free(want);
    return tu_done();
}
