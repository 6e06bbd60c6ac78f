package pades

// SetTokenSizeGuess lets tests force the placeholder-too-small path.
func SetTokenSizeGuess(n int) (restore func()) {
	old := tokenSizeGuess
	tokenSizeGuess = n
	return func() { tokenSizeGuess = old }
}
