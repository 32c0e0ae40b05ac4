package sfu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// loggerFactory adapts pion's LoggerFactory to slog. pion's Debug and Trace
// are both mapped below slog's Debug so they stay out of debug logs: pion
// logs per packet at those levels.
type loggerFactory struct{ log *slog.Logger }

func newLoggerFactory(log *slog.Logger) logging.LoggerFactory { return loggerFactory{log: log} }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

const levelTrace = slog.LevelDebug - 4

func (l pionLogger) emit(level slog.Level, msg string) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) Trace(msg string) { l.emit(levelTrace, msg) }
func (l pionLogger) Tracef(format string, args ...any) {
	l.emit(levelTrace, fmt.Sprintf(format, args...))
}
func (l pionLogger) Debug(msg string) { l.emit(levelTrace, msg) }
func (l pionLogger) Debugf(format string, args ...any) {
	l.emit(levelTrace, fmt.Sprintf(format, args...))
}
func (l pionLogger) Info(msg string) { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any) {
	l.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l pionLogger) Warn(msg string) { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.emit(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelError, fmt.Sprintf(format, args...))
}
