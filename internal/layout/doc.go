// Package layout holds no code: its test checks the project's import
// rules, the layout README.md describes.
package layout
