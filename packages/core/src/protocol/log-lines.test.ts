import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import { LogChunk, LogLines, LogStream } from './index';
import { decodeLogLines } from './log-lines';

const batch: LogLines = {
  firstSeq: 7,
  text: 'héllo wörld 🙂' + 'x'.repeat(300),
  textLengths: [5, 1, 8, 300, 0x7fffffff, 0xffffffff, 0],
  firstTimestampMs: 1_764_403_200_123,
  timestampDeltasMs: [0, 1, -1, 300, -0x7fffffff, 0x7fffffff, 2],
  // Values past the enum are what a newer peer may send: kept as numbers, like the generated decoder does.
  streams: [LogStream.LOG_STREAM_STDOUT, LogStream.LOG_STREAM_STDERR, LogStream.LOG_STREAM_SYSTEM, 1, -3, 0x7fffffff, 2] as LogStream[],
};

describe('LogLines decoding', () => {
  it('decodes what the generated encoder wrote, alone and inside a message that holds one', () => {
    expect(decodeLogLines(LogLines.encode(batch).finish())).toEqual(batch);
    expect(LogChunk.decode(LogChunk.encode({ lines: batch }).finish())).toEqual({ lines: batch });
    // The messages that hold a LogLines (LogChunk, LogBatch, JobFinished) decode it with this decoder.
    expect(LogLines.decode).toBe(decodeLogLines);
    expect(decodeLogLines(LogLines.encode({ ...batch, textLengths: [], timestampDeltasMs: [], streams: [] }).finish())).toMatchObject({ textLengths: [] });
  });

  it('reads unpacked values, packed runs split in several fields, and skips unknown fields', () => {
    const writer = new BinaryWriter();
    writer.uint32((1 << 3) | 0).uint32(3);
    writer.uint32((9 << 3) | 2).string('a field from a newer peer');
    writer.uint32((3 << 3) | 0).uint32(4);
    writer.uint32((3 << 3) | 2).fork().uint32(5).uint32(300).join();
    writer.uint32((5 << 3) | 2).fork().sint32(-2).join();
    writer.uint32((5 << 3) | 0).sint32(7);
    writer.uint32((5 << 3) | 2).fork().sint32(-70_000).join();
    writer.uint32((6 << 3) | 0).int32(-1);
    writer.uint32((6 << 3) | 2).fork().int32(2).join();
    expect(decodeLogLines(writer.finish())).toEqual({
      firstSeq: 3,
      text: '',
      textLengths: [4, 5, 300],
      firstTimestampMs: 0,
      timestampDeltasMs: [-2, 7, -70_000],
      streams: [-1, 2] as LogStream[],
    });
  });
});
