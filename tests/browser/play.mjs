// Plays videos in Debian's Chromium, headless, and prints what the page saw, as one JSON line
// per video: `node play.mjs FILE...`. The files are served from a loopback HTTP server (with
// byte ranges, as a browser's media stack asks for them) to a page that puts each in a
// <video>, waits for its metadata, plays it to the end and reads getVideoPlaybackQuality().
// tests/browser.rs runs this and asserts on the results; CHROMIUM overrides the browser path.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';

const files = process.argv.slice(2);
const TYPES = { mp4: 'video/mp4', webm: 'video/webm' };

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (path === '/favicon.ico') {
    res.writeHead(204).end();
    return;
  }
  if (path === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>vidpipe playback</title><body></body>');
    return;
  }
  const file = files[Number(path.slice(1).split('.')[0])];
  if (file === undefined) {
    res.writeHead(404).end();
    return;
  }
  const size = fs.statSync(file).size;
  const type = TYPES[file.split('.').pop()] ?? 'application/octet-stream';
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  let [start, end] = [0, size - 1];
  if (range) {
    start = range[1] === '' ? Math.max(0, size - Number(range[2])) : Number(range[1]);
    end = range[1] !== '' && range[2] !== '' ? Math.min(Number(range[2]), size - 1) : end;
    if (start > end || start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
  }
  res.writeHead(range ? 206 : 200, {
    'content-type': type,
    'content-length': end - start + 1,
    'accept-ranges': 'bytes',
    ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  });
  fs.createReadStream(file, { start, end }).pipe(res);
});
await new Promise((ready) => server.listen(0, '127.0.0.1', ready));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    // Play without a user gesture; the videos have no sound anyway.
    '--autoplay-policy=no-user-gesture-required',
  ],
});
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  await page.goto(origin + '/');
  for (const [i, file] of files.entries()) {
    const ext = file.split('.').pop();
    const result = await page.evaluate(async (src) => {
      const video = document.createElement('video');
      video.muted = true;
      video.preload = 'auto';
      document.body.replaceChildren(video);
      const failed = () =>
        new Error(`media error ${video.error?.code}: ${video.error?.message ?? ''}`);
      const wait = (event) =>
        new Promise((done, fail) => {
          video.addEventListener(event, done, { once: true });
          video.addEventListener('error', () => fail(failed()), { once: true });
        });
      try {
        const loaded = wait('loadedmetadata');
        video.src = src;
        await loaded;
        const seen = { width: video.videoWidth, height: video.videoHeight, duration: video.duration };
        // A video that stalls fails here rather than hanging the test: three times its length
        // and ten seconds more.
        const ended = Promise.race([
          wait('ended'),
          new Promise((_, fail) =>
            setTimeout(
              () => fail(new Error(`not ended after ${video.currentTime} s`)),
              (video.duration * 3 + 10) * 1000,
            ),
          ),
        ]);
        await video.play();
        await ended;
        const quality = video.getVideoPlaybackQuality();
        return {
          ...seen,
          ended: video.ended,
          current_time: video.currentTime,
          decoded_frames: quality.totalVideoFrames,
          dropped_frames: quality.droppedVideoFrames,
          corrupted_frames: quality.corruptedVideoFrames ?? 0,
          error: video.error ? `media error ${video.error.code}` : null,
        };
      } catch (e) {
        return { error: String(e.message ?? e) };
      }
    }, `${origin}/${i}.${ext}`);
    console.log(JSON.stringify({ file, ...result, console_errors: consoleErrors.splice(0) }));
  }
} finally {
  await browser.close();
  server.close();
}
