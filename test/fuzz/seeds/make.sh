#!/bin/sh
# Small real files the fuzzer mutates (test/fuzz): made once with ffmpeg 5.1 and
# committed, so the fuzzer and npm test need no ffmpeg. Re-run to regenerate.
set -e
cd "$(dirname "$0")"
F="ffmpeg -hide_banner -loglevel error -y"
$F -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.1" -c:a pcm_s16le tone-s16.wav
$F -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.1" -c:a pcm_mulaw tone-ulaw.wav
$F -f lavfi -i "sine=frequency=440:sample_rate=16000:duration=0.05" -ac 2 -c:a pcm_s16le -write_bext 1 stereo-bext.wav
$F -f lavfi -i "testsrc=size=64x48:rate=10:duration=0.3" -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.3" \
  -c:v libx264 -bf 2 -g 3 -pix_fmt yuv420p -preset veryfast -c:a aac -b:a 16k -ac 1 av.mp4
$F -i av.mp4 -c copy -movflags +faststart av-faststart.mp4
$F -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.3" -c:a aac -b:a 16k -ac 1 aac.m4a
$F -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.3" -c:a aac -b:a 16k -ac 1 -f adts tone.aac
$F -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=0.1" -c:a libopus -b:a 16k tone.opus
$F -f lavfi -i "testsrc=size=64x48:rate=10:duration=0.3" -c:v libx264 -bf 2 -g 3 -pix_fmt yuv420p -preset veryfast -f h264 tiny.h264
# Sender SDPs (-sdp_file) as ffmpeg writes them for a record session.
$F -i av.mp4 -map 0:v -c copy -f rtp rtp://127.0.0.1:47000 -map 0:a -c copy -f rtp rtp://127.0.0.1:47002 -sdp_file h264-aac.sdp
$F -i tone.opus -c copy -f rtp rtp://127.0.0.1:47004 -sdp_file opus.sdp
$F -i tone-ulaw.wav -c:a pcm_mulaw -f rtp rtp://127.0.0.1:47006 -sdp_file pcmu.sdp
$F -i tone-s16.wav -ac 2 -c:a pcm_s16be -f rtp rtp://127.0.0.1:47008 -sdp_file l16.sdp
