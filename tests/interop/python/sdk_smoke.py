"""Drives a PDS with the official Python atproto SDK and checks what comes back.

    tests/interop/.venv/bin/python tests/interop/python/sdk_smoke.py http://localhost:2583

Creates an account, logs in, posts, uploads a small PNG, posts with that image, lists the posts
and deletes one. Exits non-zero (with a traceback) on the first failed step or assertion.

Only com.atproto.* and repo writes are used: no AppView is assumed, so the login skips the SDK's
app.bsky.actor.getProfile lookup and the DID is passed to the post helpers explicitly.
"""

import argparse
import os
import struct
import sys
import zlib

from atproto import Client, models
from atproto_client.exceptions import AtProtocolError


def random_png(width: int = 16, height: int = 16) -> bytes:
    """A valid RGBA PNG with random pixels (about 1.1 KiB at 16x16)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    raw = b''.join(b'\x00' + os.urandom(width * 4) for _ in range(height))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 6, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')


def step(name: str) -> None:
    print(f'- {name}', flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('pds_url')
    parser.add_argument('--handle-domain', default='.test')
    args = parser.parse_args()

    handle = f'py{os.urandom(4).hex()}{args.handle_domain}'
    password = 'python-sdk-password-1'

    step(f'create_account {handle}')
    signup = Client(base_url=args.pds_url)
    created = signup.com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(handle=handle, email=f'{handle}@example.com', password=password)
    )
    assert created.handle == handle, created
    assert created.did.startswith('did:plc:'), created.did
    assert created.access_jwt and created.refresh_jwt
    did = created.did

    step('login')
    client = Client(base_url=args.pds_url)
    client.login(handle, password, fetch_bsky_profile=False)
    session = client.com.atproto.server.get_session()
    assert session.did == did and session.handle == handle, session

    step('send_post')
    post = client.send_post('hello from the Python SDK', profile_identify=did)
    assert post.uri.startswith(f'at://{did}/app.bsky.feed.post/'), post.uri
    assert post.cid

    step('upload_blob')
    png = random_png()
    uploaded = client.upload_blob(png)
    assert uploaded.blob.mime_type == 'image/png', uploaded.blob
    assert uploaded.blob.size == len(png), (uploaded.blob.size, len(png))
    blob_cid = uploaded.blob.cid.encode()

    step('send_image')
    image_post = client.send_image('a post with a picture', image=png, image_alt='random pixels', profile_identify=did)
    assert image_post.uri.startswith(f'at://{did}/app.bsky.feed.post/'), image_post.uri
    stored = client.app.bsky.feed.post.get(did, image_post.uri.rsplit('/', 1)[1])
    images = stored.value.embed.images
    assert len(images) == 1 and images[0].alt == 'random pixels', images
    assert images[0].image.cid.encode() == blob_cid, (images[0].image.cid.encode(), blob_cid)

    step('list_records')
    listed = client.com.atproto.repo.list_records({'repo': did, 'collection': 'app.bsky.feed.post'})
    assert sorted(r.uri for r in listed.records) == sorted([post.uri, image_post.uri]), listed.records
    texts = {r.uri: r.value.text for r in listed.records}
    assert texts[post.uri] == 'hello from the Python SDK', texts

    step('delete_post')
    assert client.delete_post(post.uri) is True
    listed = client.com.atproto.repo.list_records({'repo': did, 'collection': 'app.bsky.feed.post'})
    assert [r.uri for r in listed.records] == [image_post.uri], listed.records
    try:
        client.com.atproto.repo.get_record({'repo': did, 'collection': 'app.bsky.feed.post', 'rkey': post.uri.rsplit('/', 1)[1]})
    except AtProtocolError:
        pass
    else:
        raise AssertionError('the deleted post is still readable')

    print('python sdk smoke: ok', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
