/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asking the runtime which manifest digest an image ID stands for (ImageStatus), for a
 * CreateContainer whose image reached the node without a pull through pinlet (pre-pulled,
 * imported with ctr). One unary call on gRPC core, on the calling worker thread, with a
 * channel and completion queue of its own: the rare path (a pull through pinlet leaves a
 * pin) does not need the proxy's multiplexed channel, and a private queue lets this
 * thread drive the call with grpc_completion_queue_next() without touching the proxy's
 * loop. The messages are protobuf-c's (proto/cri.proto).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "cri.pb-c.h"
#include "proxy/socket.h"
#include "ref/ref.h"
#include "util/time.h"
#include "verify/verify.h"

static gpr_timespec deadline_ts(int64_t deadline_ms)
{
        int64_t left = deadline_ms - pinlet_now_ms();

        if (left < 0)
                left = 0;
        return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(left, GPR_TIMESPAN));
}

/* repo_digests entry "name@digest" whose name is repository (normalized), or NULL */
static bool entry_matches(const ProtobufCBinaryData *e, const char *repository)
{
        _cleanup_free_ char *s = NULL, *name = NULL;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;

        if (!repository || memchr(e->data, 0, e->len))
                return false;
        s = strndup((const char *)e->data, e->len);
        if (!s || pinlet_ref_parse(s, &ref, NULL) < 0)
                return false;
        name = pinlet_ref_name(ref);
        return name && strcmp(name, repository) == 0;
}

static int digest_of(const ProtobufCBinaryData *e, char **ret)
{
        const char *at = memchr(e->data, '@', e->len);
        char *d;

        if (!at || memchr(e->data, 0, e->len))
                return 0;
        d = strndup(at + 1, e->len - (size_t)(at + 1 - (const char *)e->data));
        if (!d)
                return -ENOMEM;
        if (!pinlet_ref_digest_valid(d)) {
                free(d);
                return 0;
        }
        *ret = d;
        return 1;
}

int pinlet_verify_runtime_digest(const char *endpoint, const char *api, const char *image_id,
                                 const char *repository, size_t max_message, int64_t deadline_ms,
                                 char **ret_digest, struct pinlet_error **err)
{
        _cleanup_free_ char *target = NULL, *method = NULL;
        Pinlet__Cri__ImageSpec spec = PINLET__CRI__IMAGE_SPEC__INIT;
        Pinlet__Cri__ImageStatusRequest req = PINLET__CRI__IMAGE_STATUS_REQUEST__INIT;
        Pinlet__Cri__ImageStatusResponse *resp = NULL;
        grpc_channel_credentials *creds = NULL;
        grpc_channel *ch = NULL;
        grpc_completion_queue *cq = NULL;
        grpc_call *call = NULL;
        grpc_metadata_array md_in, md_trail;
        grpc_byte_buffer *send = NULL, *recv = NULL;
        grpc_status_code status = GRPC_STATUS_UNKNOWN;
        grpc_slice details = grpc_empty_slice(), send_slice, path;
        grpc_arg args[1];
        grpc_channel_args cargs = { .num_args = 1, .args = args };
        grpc_op ops[6];
        grpc_event ev;
        uint8_t *buf = NULL;
        size_t len;
        int r;

        grpc_metadata_array_init(&md_in);
        grpc_metadata_array_init(&md_trail);
        if (!endpoint || !api || !image_id)
                return pinlet_error_set(err, PINLET_EINVAL, "runtime ImageStatus: missing input");
        r = pinlet_proxy_endpoint_target(endpoint, &target);
        if (r < 0)
                return pinlet_error_set(err, r, "invalid runtime endpoint '%s'", endpoint);
        if (asprintf(&method, "/%s.ImageService/ImageStatus", api) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");

        spec.image.data = (uint8_t *)image_id;
        spec.image.len = strlen(image_id);
        req.image = &spec;
        len = pinlet__cri__image_status_request__get_packed_size(&req);
        buf = malloc(len ? len : 1);
        if (!buf)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        pinlet__cri__image_status_request__pack(&req, buf);
        send_slice = grpc_slice_from_copied_buffer((const char *)buf, len);
        free(buf);
        send = grpc_raw_byte_buffer_create(&send_slice, 1);
        grpc_slice_unref(send_slice);

        args[0] = (grpc_arg){ .type = GRPC_ARG_INTEGER,
                              .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                              .value.integer = max_message > INT_MAX ? INT_MAX : (int)max_message };
        creds = grpc_insecure_credentials_create();
        ch = grpc_channel_create(target, creds, &cargs);
        grpc_channel_credentials_release(creds);
        cq = grpc_completion_queue_create_for_next(NULL);
        path = grpc_slice_from_static_string(method);
        call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL,
                                        deadline_ts(deadline_ms), NULL);
        if (!call) {
                r = pinlet_error_set(err, -ENOMEM, "cannot create a call to %s", endpoint);
                goto out;
        }
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &recv;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;
        if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) {
                r = pinlet_error_set(err, PINLET_EUNAVAIL, "cannot start ImageStatus on %s",
                                     endpoint);
                goto out;
        }
        /* the call's deadline ends it: the event always comes */
        ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
                r = pinlet_error_set(err, PINLET_EUNAVAIL, "ImageStatus on %s failed", endpoint);
                goto out;
        }
        if (status != GRPC_STATUS_OK) {
                char *d = grpc_slice_to_c_string(details);

                r = pinlet_error_set(err,
                                     status == GRPC_STATUS_DEADLINE_EXCEEDED ? PINLET_ETIMEOUT
                                     : status == GRPC_STATUS_NOT_FOUND       ? PINLET_ENOTFOUND
                                                                             : PINLET_EUNAVAIL,
                                     "runtime %s: ImageStatus %s: %s", endpoint, image_id,
                                     d ? d : "");
                gpr_free(d);
                goto out;
        }
        r = 0;
        if (recv) {
                grpc_byte_buffer_reader rd;
                grpc_slice all;

                if (!grpc_byte_buffer_reader_init(&rd, recv)) {
                        r = pinlet_error_set(err, PINLET_EPROTO, "unreadable ImageStatus answer");
                        goto out;
                }
                all = grpc_byte_buffer_reader_readall(&rd);
                grpc_byte_buffer_reader_destroy(&rd);
                resp = pinlet__cri__image_status_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                                  GRPC_SLICE_START_PTR(all));
                grpc_slice_unref(all);
                if (!resp) {
                        r = pinlet_error_set(err, PINLET_EPROTO, "malformed ImageStatusResponse");
                        goto out;
                }
        }
        if (resp && resp->image) {
                const Pinlet__Cri__Image *img = resp->image;

                /* the entry naming the requested repository first: an image ID may be
                 * known under several names */
                for (size_t i = 0; r == 0 && i < img->n_repo_digests; i++)
                        if (entry_matches(&img->repo_digests[i], repository))
                                r = digest_of(&img->repo_digests[i], ret_digest);
                for (size_t i = 0; r == 0 && i < img->n_repo_digests; i++)
                        r = digest_of(&img->repo_digests[i], ret_digest);
                if (r < 0)
                        r = pinlet_error_set(err, r, "out of memory");
        }
out:
        if (resp)
                pinlet__cri__image_status_response__free_unpacked(resp, NULL);
        if (recv)
                grpc_byte_buffer_destroy(recv);
        if (send)
                grpc_byte_buffer_destroy(send);
        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&md_in);
        grpc_metadata_array_destroy(&md_trail);
        if (call)
                grpc_call_unref(call);
        if (cq) {
                grpc_completion_queue_shutdown(cq);
                while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
                               .type != GRPC_QUEUE_SHUTDOWN)
                        ;
                grpc_completion_queue_destroy(cq);
        }
        if (ch)
                grpc_channel_destroy(ch);
        return r;
}
