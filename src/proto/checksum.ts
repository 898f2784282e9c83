/**
 * RFC 1071 Internet checksum: the 16-bit one's complement of the one's complement sum of the
 * 16-bit big-endian words in buf[offset, offset + length), an odd last byte padded with zero.
 * Store the result in the checksum field (zeroed while summing); summing a buffer that already
 * carries its checksum gives 0.
 */
export function inCksum(buf: Buffer, offset = 0, length = buf.length - offset): number {
  const end = Math.min(buf.length, offset + Math.max(0, length));
  let sum = 0;
  let i = Math.max(0, offset);
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  // Two folds suffice: the sum of at most 2^31 words fits a double exactly.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}
