/*
 * fuzz_config.c - advjpgd's config file (INI through inih, sizes, integer
 * ranges, paths relative to the file): srv_config_load with --config on a
 * file holding the input. A loaded config must satisfy the documented
 * ranges. The file is $TMPDIR/advjpg-fuzz-config-<pid>.conf, rewritten for
 * each input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv_config.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[512];
    if (!*path) {
        const char *t = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/advjpg-fuzz-config-%d.conf", t && *t ? t : "/tmp",
                 (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char *argv[] = {"advjpgd", "--config", path, NULL};
    srv_config cfg;
    char err[ADJ_ERRLEN];
    FILE *out = fopen("/dev/null", "w");
    int rc = srv_config_load(&cfg, 3, argv, out ? out : stdout, err, sizeof err);
    if (out)
        fclose(out);
    if (rc == ADJ_OK) {
        if (cfg.threads < 1 || cfg.conn_limit < 1 || cfg.per_ip_limit < 1 || !cfg.model ||
            !cfg.weights || !cfg.listen || !cfg.jobs_dir)
            abort();
        srv_config_free(&cfg);
    }
    unlink(path);
    return 0;
}
