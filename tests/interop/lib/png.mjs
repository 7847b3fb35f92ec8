// A small valid PNG (RGBA, 8 bits per channel) with random pixels, so it does not compress:
// a 16x16 image is about 1.1 KiB. Used as a blob (avatar, image embed) by the tests and bench.
import { crc32, deflateSync } from 'node:zlib'
import { randomBytes } from 'node:crypto'

function chunk(type, data) {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'ascii')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0)
  return Buffer.concat([head, data, crc])
}

export function randomPng(width = 16, height = 16) {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 6 // colour type: RGBA
  const rows = []
  for (let y = 0; y < height; y++) rows.push(Buffer.from([0]), randomBytes(width * 4)) // filter 0
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}
